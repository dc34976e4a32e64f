package merkle

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Differential tests against github.com/transparency-dev/merkle (a test-only
// dependency) and the recursive RFC reference in reference_test.go.

var tdHasher = rfc6962.DefaultHasher

func toBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func fromBytes(t testing.TB, bs [][]byte) []Hash {
	t.Helper()
	out := make([]Hash, len(bs))
	for i, b := range bs {
		h, err := HashFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

// compareNodes checks our Nodes against transparency-dev's for the same
// proof. Within the ephemeral block transparency-dev lists nodes right to
// left (the order it folds them in) while Nodes lists them left to right.
func compareNodes(t testing.TB, what fmt.Stringer, ours Nodes, theirs tdproof.Nodes) {
	t.Helper()
	ephem, b, e := theirs.Ephem()
	ids := make([]NodeID, len(theirs.IDs))
	for i, id := range theirs.IDs {
		ids[i] = NodeID{Level: uint8(id.Level), Index: id.Index}
	}
	for i, j := b, e-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	if !idsEqual(ours.IDs, ids) {
		t.Fatalf("%s: IDs %v, transparency-dev %v", what, ours.IDs, ids)
	}
	if ours.Begin != b || ours.End != e {
		t.Fatalf("%s: ephemeral block [%d:%d), transparency-dev [%d:%d)", what, ours.Begin, ours.End, b, e)
	}
	if b < e && ours.Ephem != (NodeID{Level: uint8(ephem.Level), Index: ephem.Index}) {
		t.Fatalf("%s: Ephem %v, transparency-dev %v", what, ours.Ephem, ephem)
	}
}

// Every size up to 1024 and every index / every old size: roots, node IDs,
// assembled proofs and verification must agree with both the reference and
// transparency-dev.
func TestDifferentialAllSizesUpTo1024(t *testing.T) {
	// About a million short-lived proofs: a lazier GC halves the run time.
	old := debug.SetGCPercent(400)
	t.Cleanup(func() { debug.SetGCPercent(old) }) // after the parallel parts
	const N = 1024
	leaves := testLeaves(N)
	ref := newRefTree(leaves)
	r, store := NewRange(), &nodeStore{}
	cr := (&compact.RangeFactory{Hash: tdHasher.HashChildren}).NewEmptyRange(0)
	roots := make([]Hash, N+1)
	roots[0] = EmptyRoot()
	for n := 1; n <= N; n++ {
		r.Append(leaves[n-1], store.visit)
		if err := cr.Append(leaves[n-1][:], nil); err != nil {
			t.Fatal(err)
		}
		td, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots[n] = r.Root()
		if roots[n] != ref.mth(0, uint64(n)) || string(td) != string(roots[n][:]) {
			t.Fatalf("size %d: root %s, reference %s, transparency-dev %x", n, roots[n], ref.mth(0, uint64(n)), td)
		}
		if got := fromBytes(t, cr.Hashes()); !hashesEqual(got, r.Hashes()) {
			t.Fatalf("size %d: frontier differs from transparency-dev", n)
		}
	}

	// Two interleaved halves of the sizes, one per core; each has its own
	// reference tree (its memo is not safe for concurrent use).
	for part := uint64(0); part < 2; part++ {
		t.Run(fmt.Sprintf("part%d", part), func(t *testing.T) {
			t.Parallel()
			ref := newRefTree(leaves)
			for n := 1 + part; n <= N; n += 2 {
				diffProofs(t, ref, store, roots, n)
			}
		})
	}
}

// diffProofs checks that every inclusion and consistency proof of the tree of
// size n is identical in node IDs and hashes to the reference's and to
// transparency-dev's. Verification, the slow part, runs on every proof for
// n <= 256 and every 8th size above (ours) and for n <= 64 and every 32nd
// size (transparency-dev's); the property and fuzz tests verify more.
func diffProofs(t *testing.T, ref *refTree, store *nodeStore, roots []Hash, n uint64) {
	leaves := ref.leaves
	verify := n <= 256 || n%8 == 0
	tdVerify := n <= 64 || n%32 == 0
	for i := uint64(0); i < n; i++ {
		what := desc{"inclusion", i, n}
		ours := inclusionNodes(t, i, n)
		theirs, err := tdproof.Inclusion(i, n)
		if err != nil {
			t.Fatal(err)
		}
		compareNodes(t, what, ours, theirs)
		fetched := store.fetch(ours.IDs)
		p, err := ours.Rehash(fetched)
		if err != nil {
			t.Fatal(err)
		}
		if !hashesEqual(p, ref.inclusion(i, n)) {
			t.Fatalf("%s: proof differs from reference", what)
		}
		tp, err := theirs.Rehash(toBytes(reorderForTD(fetched, ours)), tdHasher.HashChildren)
		if err != nil || !sameBytes(tp, p) {
			t.Fatalf("%s: proof differs from transparency-dev's (%v)", what, err)
		}
		if verify {
			if err := VerifyInclusion(leaves[i], i, n, p, roots[n]); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if tdVerify {
			if err := tdproof.VerifyInclusion(tdHasher, i, n, leaves[i][:], toBytes(p), roots[n][:]); err != nil {
				t.Fatalf("%s: transparency-dev rejects our proof: %v", what, err)
			}
		}
	}
	for m := uint64(0); m <= n; m++ {
		what := desc{"consistency", m, n}
		ours := consistencyNodes(t, m, n)
		theirs, err := tdproof.Consistency(m, n)
		if err != nil {
			t.Fatal(err)
		}
		compareNodes(t, what, ours, theirs)
		fetched := store.fetch(ours.IDs)
		p, err := ours.Rehash(fetched)
		if err != nil {
			t.Fatal(err)
		}
		if !hashesEqual(p, ref.consistency(m, n)) {
			t.Fatalf("%s: proof differs from reference", what)
		}
		tp, err := theirs.Rehash(toBytes(reorderForTD(fetched, ours)), tdHasher.HashChildren)
		if err != nil || !sameBytes(tp, p) {
			t.Fatalf("%s: proof differs from transparency-dev's (%v)", what, err)
		}
		if verify {
			if err := VerifyConsistency(m, n, p, roots[m], roots[n]); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if tdVerify {
			if err := tdproof.VerifyConsistency(tdHasher, m, n, toBytes(p), roots[m][:], roots[n][:]); err != nil {
				t.Fatalf("%s: transparency-dev rejects our proof: %v", what, err)
			}
		}
	}
}

// desc names a proof in failure messages without formatting it up front.
type desc struct {
	kind string
	a, b uint64
}

func (d desc) String() string { return fmt.Sprintf("%s %d/%d", d.kind, d.a, d.b) }

func sameBytes(a [][]byte, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i][:]) {
			return false
		}
	}
	return true
}

// reorderForTD returns a copy of hashes (in the order of n.IDs) with the
// ephemeral block reversed, the order transparency-dev's Nodes lists it in.
func reorderForTD(hashes []Hash, n Nodes) []Hash {
	out := append([]Hash(nil), hashes...)
	for i, j := n.Begin, n.End-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// sparseTree is a real RFC 6962 tree of any size up to 2^64-1 in which every
// leaf is the same hash except a few "special" ones. The hash of a full node
// over uniform leaves depends only on its level, so any node hash is cheap:
// nodes above special leaves are computed (and memoised), the rest looked up.
type sparseTree struct {
	special map[uint64]Hash
	uniform [65]Hash
	memo    map[NodeID]Hash
}

func newSparseTree(rng *rand.Rand, special ...uint64) *sparseTree {
	s := &sparseTree{special: map[uint64]Hash{}, memo: map[NodeID]Hash{}}
	s.uniform[0] = LeafHash([]byte("uniform leaf"))
	for l := 1; l < len(s.uniform); l++ {
		s.uniform[l] = NodeHash(s.uniform[l-1], s.uniform[l-1])
	}
	for _, i := range special {
		s.special[i] = LeafHash(fmt.Appendf(nil, "special %d %d", i, rng.Uint64()))
	}
	return s
}

func (s *sparseTree) hash(id NodeID) Hash {
	if h, ok := s.memo[id]; ok {
		return h
	}
	lo := id.Index << id.Level
	hi := lo + (uint64(1)<<id.Level - 1) // inclusive, so level 63/64 cannot wrap
	touched := false
	for i := range s.special {
		if i >= lo && i <= hi {
			touched = true
			break
		}
	}
	var h Hash
	switch {
	case !touched:
		return s.uniform[id.Level]
	case id.Level == 0:
		h = s.special[id.Index]
	default:
		h = NodeHash(s.hash(NodeID{id.Level - 1, 2 * id.Index}), s.hash(NodeID{id.Level - 1, 2*id.Index + 1}))
	}
	s.memo[id] = h
	return h
}

func (s *sparseTree) leaf(i uint64) Hash { return s.hash(NodeID{0, i}) }

func (s *sparseTree) fetch(ids []NodeID) []Hash {
	out := make([]Hash, len(ids))
	for i, id := range ids {
		out[i] = s.hash(id)
	}
	return out
}

func (s *sparseTree) root(t testing.TB, n uint64) Hash {
	r, err := RootFromNodes(n, s.fetch(RangeNodes(n)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// largeSizes returns random sizes up to 2^40 plus edge cases up to 2^64-1.
func largeSizes(rng *rand.Rand, count int) []uint64 {
	sizes := []uint64{1 << 40, 1<<40 - 1, 1<<40 + 1, 1<<32 + 1, 1 << 63, 1<<63 + 1, 1<<64 - 1, 1<<64 - 2}
	for len(sizes) < count {
		sizes = append(sizes, 1+rng.Uint64N(1<<40))
	}
	return sizes
}

// Random sizes up to 2^40 (and a few up to 2^64-1), using node-ID math and
// sparse trees: node IDs equal transparency-dev's, proofs verify with both
// verifiers, and a corrupted proof fails with both.
func TestDifferentialLargeSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range largeSizes(rng, 2000) {
		i := rng.Uint64N(n)
		if rng.IntN(4) == 0 {
			i = n - 1 - rng.Uint64N(min(n, 300)) // near the right edge
		}
		s := newSparseTree(rng, i, rng.Uint64N(n), n-1)
		what := desc{"inclusion", i, n}
		ours := inclusionNodes(t, i, n)
		theirs, err := tdproof.Inclusion(i, n)
		if err != nil {
			t.Fatal(err)
		}
		compareNodes(t, what, ours, theirs)
		p, err := ours.Rehash(s.fetch(ours.IDs))
		if err != nil {
			t.Fatal(err)
		}
		root, leaf := s.root(t, n), s.leaf(i)
		if err := VerifyInclusion(leaf, i, n, p, root); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := tdproof.VerifyInclusion(tdHasher, i, n, leaf[:], toBytes(p), root[:]); err != nil {
			t.Fatalf("%s: transparency-dev: %v", what, err)
		}
		bad := append([]Hash(nil), p...)
		bad[rng.IntN(len(bad))][rng.IntN(HashSize)] ^= 1
		if VerifyInclusion(leaf, i, n, bad, root) == nil ||
			tdproof.VerifyInclusion(tdHasher, i, n, leaf[:], toBytes(bad), root[:]) == nil {
			t.Fatalf("%s: corrupted proof accepted", what)
		}

		m := 1 + rng.Uint64N(n)
		if rng.IntN(4) == 0 {
			m = uint64(1) << rng.IntN(bits.Len64(n)) // powers of two
		}
		s = newSparseTree(rng, m-1, m, n-1, rng.Uint64N(n))
		what = desc{"consistency", m, n}
		ours = consistencyNodes(t, m, n)
		theirs, err = tdproof.Consistency(m, n)
		if err != nil {
			t.Fatal(err)
		}
		compareNodes(t, what, ours, theirs)
		p, err = ours.Rehash(s.fetch(ours.IDs))
		if err != nil {
			t.Fatal(err)
		}
		root1, root2 := s.root(t, m), s.root(t, n)
		if err := VerifyConsistency(m, n, p, root1, root2); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := tdproof.VerifyConsistency(tdHasher, m, n, toBytes(p), root1[:], root2[:]); err != nil {
			t.Fatalf("%s: transparency-dev: %v", what, err)
		}
		if got, err := RootFromConsistencyProof(m, n, p, root1); err != nil || got != root2 {
			t.Fatalf("%s: RootFromConsistencyProof = %s, %v", what, got, err)
		}
		if len(p) > 0 {
			bad = append([]Hash(nil), p...)
			bad[rng.IntN(len(bad))][rng.IntN(HashSize)] ^= 1
			if VerifyConsistency(m, n, bad, root1, root2) == nil ||
				tdproof.VerifyConsistency(tdHasher, m, n, toBytes(bad), root1[:], root2[:]) == nil {
				t.Fatalf("%s: corrupted proof accepted", what)
			}
		}
	}
}

// A Range restored at a large size keeps appending correctly: its roots and
// the nodes it visits match the sparse tree and node-ID math.
func TestRangeLargeSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range largeSizes(rng, 100) {
		if n > 1<<64-40 {
			continue
		}
		s := newSparseTree(rng)
		r, err := RestoreRange(n, s.fetch(RangeNodes(n)))
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 33; k++ {
			idx := r.Size()
			var visited []NodeID
			r.Append(s.uniform[0], func(id NodeID, h Hash) {
				visited = append(visited, id)
				if h != s.uniform[id.Level] {
					t.Fatalf("size %d: visited %v with a wrong hash", idx, id)
				}
			})
			// The leaf, then one parent per trailing one bit of idx.
			if want := 1 + bits.TrailingZeros64(^idx); len(visited) != want {
				t.Fatalf("size %d: visited %v, want %d nodes", idx, visited, want)
			}
			for l, id := range visited {
				if id != (NodeID{uint8(l), idx >> l}) {
					t.Fatalf("size %d: visit %d is %v", idx, l, id)
				}
			}
			if got, want := r.Root(), s.root(t, r.Size()); got != want {
				t.Fatalf("size %d: root %s, want %s", r.Size(), got, want)
			}
		}
	}
}
