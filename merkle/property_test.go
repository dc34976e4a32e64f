package merkle

import (
	"encoding/binary"
	"testing"

	"pgregory.net/rapid"
)

// For random m <= n <= k: consistency(m,n) and consistency(n,k) verify, and
// the inclusion of every leaf of the size-m tree verifies against the size-k
// root. The proofs are produced the way the ledger produces them (nodes
// visited by Append, InclusionNodes/ConsistencyNodes, Rehash), and a Range
// saved at size n and restored keeps growing to the same size-k root.
func TestPropertyProofsAcrossSizes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Small trees and big ones (rapid leans towards small values).
		k := rapid.OneOf(rapid.Uint64Range(1, 64), rapid.Uint64Range(65, 2048)).Draw(t, "k")
		// rapid leans towards the low end of a range: draw each size either
		// from the bottom up or from the top down.
		below := func(max uint64, label string) uint64 {
			if rapid.Bool().Draw(t, label+"FromTop") {
				return max - rapid.Uint64Range(0, max).Draw(t, label+"Gap")
			}
			return rapid.Uint64Range(0, max).Draw(t, label)
		}
		n := below(k, "n")
		m := below(n, "m")
		seed := rapid.Uint64().Draw(t, "seed")

		leaves := make([]Hash, k)
		var buf [16]byte
		binary.BigEndian.PutUint64(buf[:8], seed)
		for i := range leaves {
			binary.BigEndian.PutUint64(buf[8:], uint64(i))
			leaves[i] = LeafHash(buf[:])
		}
		r, store := NewRange(), &nodeStore{}
		roots := map[uint64]Hash{0: EmptyRoot()}
		var saved *Range
		for i, l := range leaves {
			if uint64(i) == n {
				saved = r.Clone()
			}
			r.Append(l, store.visit)
			roots[uint64(i+1)] = r.Root()
		}
		if n == k {
			saved = r.Clone()
		}
		rootM, rootN, rootK := roots[m], roots[n], roots[k]

		proof := func(nodes Nodes, err error) []Hash {
			if err != nil {
				t.Fatal(err)
			}
			p, err := nodes.Rehash(store.fetch(nodes.IDs))
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, c := range [][2]uint64{{m, n}, {n, k}, {m, k}} {
			p := proof(ConsistencyNodes(c[0], c[1]))
			if err := VerifyConsistency(c[0], c[1], p, roots[c[0]], roots[c[1]]); err != nil {
				t.Fatalf("consistency %d -> %d: %v", c[0], c[1], err)
			}
			if c[0] > 0 {
				if got, err := RootFromConsistencyProof(c[0], c[1], p, roots[c[0]]); err != nil || got != roots[c[1]] {
					t.Fatalf("RootFromConsistencyProof %d -> %d: %s, %v", c[0], c[1], got, err)
				}
			}
		}
		for i := uint64(0); i < m; i++ {
			p := proof(InclusionNodes(i, k))
			if err := VerifyInclusion(leaves[i], i, k, p, rootK); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, k, err)
			}
			p = proof(InclusionNodes(i, m))
			if err := VerifyInclusion(leaves[i], i, m, p, rootM); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, m, err)
			}
		}

		// Save at n, restore, append the rest: same roots, same stored nodes.
		restored, err := RestoreRange(saved.Size(), saved.Hashes())
		if err != nil {
			t.Fatal(err)
		}
		if restored.Root() != rootN {
			t.Fatalf("restored root at %d differs", n)
		}
		half := int(n) + (int(k)-int(n))/2
		for i := int(n); i < half; i++ {
			restored.Append(leaves[i], func(id NodeID, h Hash) {
				if store.get(id) != h {
					t.Fatalf("restored range visited %v with another hash", id)
				}
			})
		}
		restored.AppendMany(leaves[half:], nil)
		if restored.Root() != rootK || restored.Size() != k {
			t.Fatalf("restored range reached %d with another root", restored.Size())
		}
		if got, err := RootFromNodes(m, store.fetch(RangeNodes(m))); err != nil || got != rootM {
			t.Fatalf("RootFromNodes(%d) = %s, %v", m, got, err)
		}
	})
}

func TestRangeMisc(t *testing.T) {
	if _, err := RestoreRange(5, make([]Hash, 1)); err == nil {
		t.Error("RestoreRange with too few hashes succeeded")
	}
	if _, err := RestoreRange(0, make([]Hash, 1)); err == nil {
		t.Error("RestoreRange with too many hashes succeeded")
	}
	if _, err := RootFromNodes(3, make([]Hash, 1)); err == nil {
		t.Error("RootFromNodes with too few hashes succeeded")
	}
	r := NewRange()
	if r.Root() != EmptyRoot() || r.Size() != 0 || len(r.Hashes()) != 0 {
		t.Error("new range is not empty")
	}
	leaves := testLeaves(8)
	r.AppendMany(leaves[:5], nil)
	c := r.Clone()
	r.AppendMany(leaves[5:], nil)
	if c.Size() != 5 || c.Root() != h(rfcRoots[5]) || r.Root() != h(rfcRoots[8]) {
		t.Error("Clone is not independent")
	}
	hs := r.Hashes()
	hs[0] = Hash{}
	if r.Root() != h(rfcRoots[8]) {
		t.Error("Hashes() is not a copy")
	}
	if got := RangeNodes(13); !idsEqual(got, []NodeID{{3, 0}, {2, 2}, {0, 12}}) {
		t.Errorf("RangeNodes(13) = %v", got)
	}
}

// The hot paths the ledger leans on do not allocate.
func TestNoAllocations(t *testing.T) {
	data := make([]byte, 1000)
	leaves := testLeaves(64)
	r := NewRange()
	r.AppendMany(leaves, nil)
	var sink Hash
	count := 0
	visit := func(id NodeID, h Hash) { count++ }
	proof := hs(rfcInclusion[1].proof)
	root := h(rfcRoots[8])
	checks := map[string]func(){
		"LeafHash":     func() { sink = LeafHash(data) },
		"NodeHash":     func() { sink = NodeHash(leaves[0], leaves[1]) },
		"Append":       func() { r.Append(leaves[count%64], nil) },
		"Append+visit": func() { r.Append(leaves[count%64], visit) },
		"Root":         func() { sink = r.Root() },
		"Verify":       func() { _ = VerifyInclusion(leaves[0], 0, 8, proof, root) },
	}
	for name, f := range checks {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocations per call", name, a)
		}
	}
	_ = sink
}
