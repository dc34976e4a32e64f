package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/auditledger/ledgerd/merkle"
)

// edgeLeaf is a small canonical leaf with a unique id; tag varies the
// bytes so two stores can hold different trees of the same size.
func edgeLeaf(i int, tag string) []byte {
	return EncodeLeaf(&Entry{
		Event: Event{
			ID:     fmt.Sprintf("ev-%s-%07d", tag, i),
			Actor:  Actor{ID: "alice"},
			Action: Action{Type: "read", Resource: "doc", Result: "success"},
		},
		ReceivedAt: int64(i),
		KeyID:      "k",
		Signature:  bytes.Repeat([]byte{byte(i)}, 32),
	})
}

// refNodeHash is the proof path without caches or the edge view: the
// node's tile row read from Pebble and hashed up.
func refNodeHash(t testing.TB, s *Store, id merkle.NodeID) merkle.Hash {
	t.Helper()
	tile, r, start := merkle.TileForNode(id)
	row, err := s.tileRow(tile.Level, tile.Index)
	if err != nil {
		t.Fatal(err)
	}
	h, err := merkle.TileNodeHash(row, r, start>>r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func refProof(t testing.TB, s *Store, nodes merkle.Nodes) []merkle.Hash {
	t.Helper()
	hashes := make([]merkle.Hash, len(nodes.IDs))
	for i, id := range nodes.IDs {
		hashes[i] = refNodeHash(t, s, id)
	}
	p, err := nodes.Rehash(hashes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hashBytes(hs []merkle.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// edgeTree tracks the leaves appended to a store and the roots of every
// size, to check what the store serves.
type edgeTree struct {
	leaves [][]byte
	roots  []merkle.Hash // roots[n] is the root of the first n leaves
	rng    *merkle.Range
}

func newEdgeTree() *edgeTree {
	return &edgeTree{roots: []merkle.Hash{merkle.EmptyRoot()}, rng: merkle.NewRange()}
}

func (tr *edgeTree) add(leaves ...[]byte) {
	for _, l := range leaves {
		tr.leaves = append(tr.leaves, l)
		tr.rng.Append(merkle.LeafHash(l), nil)
		tr.roots = append(tr.roots, tr.rng.Root())
	}
}

// checkInclusion checks the store's proof of index at size against the
// reference path and both verifiers.
func checkInclusion(t testing.TB, s *Store, tr *edgeTree, index, size uint64) {
	t.Helper()
	p, err := s.InclusionProof(index, size)
	if err != nil {
		t.Fatalf("inclusion %d at %d: %v", index, size, err)
	}
	nodes, err := merkle.InclusionNodes(index, size)
	if err != nil {
		t.Fatal(err)
	}
	if want := refProof(t, s, nodes); !slices.Equal(p, want) {
		t.Fatalf("inclusion %d at %d differs from the reference path", index, size)
	}
	lh := merkle.LeafHash(tr.leaves[index])
	if got, err := s.LeafHash(index); err != nil || got != lh {
		t.Fatalf("LeafHash(%d) = %x, %v; want %x", index, got, err, lh)
	}
	root := tr.roots[size]
	if err := merkle.VerifyInclusion(lh, index, size, p, root); err != nil {
		t.Fatalf("inclusion %d at %d: %v", index, size, err)
	}
	if err := tdproof.VerifyInclusion(rfc6962.DefaultHasher, index, size, lh[:], hashBytes(p), root[:]); err != nil {
		t.Fatalf("inclusion %d at %d (transparency-dev): %v", index, size, err)
	}
}

func checkConsistency(t testing.TB, s *Store, tr *edgeTree, size1, size2 uint64) {
	t.Helper()
	p, err := s.ConsistencyProof(size1, size2)
	if err != nil {
		t.Fatalf("consistency %d→%d: %v", size1, size2, err)
	}
	nodes, err := merkle.ConsistencyNodes(size1, size2)
	if err != nil {
		t.Fatal(err)
	}
	if want := refProof(t, s, nodes); !slices.Equal(p, want) {
		t.Fatalf("consistency %d→%d differs from the reference path", size1, size2)
	}
	r1, r2 := tr.roots[size1], tr.roots[size2]
	if size1 > 0 {
		if err := merkle.VerifyConsistency(size1, size2, p, r1, r2); err != nil {
			t.Fatalf("consistency %d→%d: %v", size1, size2, err)
		}
		if err := tdproof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashBytes(p), r1[:], r2[:]); err != nil {
			t.Fatalf("consistency %d→%d (transparency-dev): %v", size1, size2, err)
		}
	}
	if got, err := s.RootAt(size1); err != nil || got != r1 {
		t.Fatalf("RootAt(%d) = %x, %v; want %x", size1, got, err, r1)
	}
}

// TestEdgeProofsEverySize appends batches of varied sizes (so the right
// edge takes every shape, and tiles of levels 0 and 1 fill) and checks,
// after every batch, proofs at the new size and at older ones.
func TestEdgeProofsEverySize(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true, TileCacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := newEdgeTree()
	rnd := rand.New(rand.NewPCG(1, 2))
	// Small batches around the first fills of level 0 and of level 1
	// (65536 leaves), large ones in between to keep the test short.
	const total = 66_000
	for seq := uint64(1); len(tr.leaves) < total; seq++ {
		n := 1 + rnd.IntN(40)
		switch {
		case len(tr.leaves) >= 3000 && len(tr.leaves) < 65_000:
			n = min(65_000-len(tr.leaves), 500+rnd.IntN(1500))
		case seq%25 == 0:
			n = 1 + rnd.IntN(700) // several tiles of level 0 at once
		}
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = edgeLeaf(len(tr.leaves)+i, "a")
		}
		if _, err := s.Apply(seq, batch); err != nil {
			t.Fatal(err)
		}
		tr.add(batch...)
		size := uint64(len(tr.leaves))
		checkInclusion(t, s, tr, size-1, size)
		checkInclusion(t, s, tr, rnd.Uint64N(size), size)
		old := 1 + rnd.Uint64N(size)
		checkInclusion(t, s, tr, rnd.Uint64N(old), old)
		checkConsistency(t, s, tr, rnd.Uint64N(size+1), size)
		checkConsistency(t, s, tr, old-1, old)
	}
}

// TestEdgeProofsWhileAppending checks proofs, leaf hashes and old roots
// against the reference path while batches keep changing the edge.
func TestEdgeProofsWhileAppending(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true, TileCacheSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The reference tree is computed up front; the writer publishes it
	// batch by batch.
	tr := newEdgeTree()
	const total = 20_000
	for i := range total {
		tr.add(edgeLeaf(i, "w"))
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		rnd := rand.New(rand.NewPCG(3, 4))
		for seq, next := uint64(1), 0; next < total; seq++ {
			n := min(total-next, 1+rnd.IntN(300))
			if _, err := s.Apply(seq, tr.leaves[next:next+n]); err != nil {
				errs <- err
				return
			}
			next += n
		}
	}()
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(5, uint64(r)))
			// Each reader's t.Fatal would run off the test goroutine:
			// report through a recording TB instead.
			rec := &recordTB{TB: t}
			for {
				select {
				case <-done:
					return
				default:
				}
				size := s.State().Size
				if size == 0 {
					continue
				}
				if !rec.run(func() {
					checkInclusion(rec, s, tr, rnd.Uint64N(size), size)
					checkConsistency(rec, s, tr, rnd.Uint64N(size+1), size)
				}) {
					errs <- rec.err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// recordTB turns Fatal into an error that a test's goroutine can report.
type recordTB struct {
	testing.TB
	err error
}

type recordedFatal struct{}

func (r *recordTB) Helper() {}
func (r *recordTB) Fatal(args ...any) {
	r.err = errors.New(fmt.Sprint(args...))
	panic(recordedFatal{})
}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.err = fmt.Errorf(format, args...)
	panic(recordedFatal{})
}

// run calls f and reports whether it finished without a Fatal.
func (r *recordTB) run(f func()) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if _, is := v.(recordedFatal); !is {
				panic(v)
			}
			ok = false
		}
	}()
	f()
	return true
}

// TestEdgeAfterRestart checks a reopened store rebuilds its edge from
// Pebble and serves the same proofs.
func TestEdgeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	tr := newEdgeTree()
	for i := range 1000 {
		tr.add(edgeLeaf(i, "r"))
	}
	s, err := OpenStore(dir, StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(1, tr.leaves[:777]); err != nil {
		t.Fatal(err)
	}
	checkInclusion(t, s, tr, 700, 777) // builds and caches the edge
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(dir, StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, idx := range []uint64{0, 255, 256, 700, 776} {
		checkInclusion(t, s, tr, idx, 777)
	}
	checkConsistency(t, s, tr, 300, 777)
	if _, err := s.Apply(2, tr.leaves[777:]); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{0, 700, 776, 777, 999} {
		checkInclusion(t, s, tr, idx, 1000)
	}
	checkConsistency(t, s, tr, 777, 1000)
}

// TestEdgeAfterRestore restores a snapshot of another tree (same size,
// other leaves) over a store whose edge and tile cache are warm: the
// proofs served after it must be those of the restored tree.
func TestEdgeAfterRestore(t *testing.T) {
	const size = 3000 // full tiles of level 0 and an edge on levels 0 and 1
	build := func(tag string) (*Store, *edgeTree) {
		s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		tr := newEdgeTree()
		for i := range size {
			tr.add(edgeLeaf(i, tag))
		}
		for seq, i := uint64(1), 0; i < size; seq, i = seq+1, i+1000 {
			if _, err := s.Apply(seq, tr.leaves[i:min(size, i+1000)]); err != nil {
				t.Fatal(err)
			}
		}
		return s, tr
	}
	src, srcTree := build("src")
	dst, dstTree := build("dst")
	for _, idx := range []uint64{5, 300, 2900, 2999} {
		checkInclusion(t, dst, dstTree, idx, size) // warm the caches
	}
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{5, 300, 2900, 2999} {
		checkInclusion(t, dst, srcTree, idx, size)
	}
	checkConsistency(t, dst, srcTree, 2100, size)
}

// TestLeaves checks the range read against per-entry reads, its bounds,
// and that a missing entry is reported as corruption.
func TestLeaves(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	leaves := make([][]byte, 2500)
	for i := range leaves {
		leaves[i] = edgeLeaf(i, "l")
	}
	if _, err := s.Apply(1, leaves); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{0, 1}, {0, 1000}, {999, 2500}, {2499, 2500}, {7, 7}} {
		got, err := s.Leaves(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != int(r[1]-r[0]) {
			t.Fatalf("Leaves(%d, %d): %d leaves", r[0], r[1], len(got))
		}
		for i, l := range got {
			want, err := s.Leaf(r[0] + uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l, want) || cap(l) != len(l) {
				t.Fatalf("Leaves(%d, %d)[%d] differs from Leaf", r[0], r[1], i)
			}
		}
	}
	if _, err := s.Leaves(2000, 2501); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Leaves beyond the size: %v, want ErrInvalid", err)
	}
	if err := s.db.Delete(entryKey(1500), nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{1400, 1600}, {1500, 1501}, {1000, 2500}} {
		if _, err := s.Leaves(r[0], r[1]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Leaves(%d, %d) over a missing entry: %v, want ErrCorrupt", r[0], r[1], err)
		}
	}
	if got, err := s.Leaves(1501, 2500); err != nil || len(got) != 999 {
		t.Fatalf("Leaves past the gap: %d, %v", len(got), err)
	}
}

// TestLeafHashBounds checks LeafHash refuses indices past the size.
func TestLeafHashBounds(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.LeafHash(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LeafHash of an empty tree: %v", err)
	}
	if _, err := s.Apply(1, [][]byte{edgeLeaf(0, "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeafHash(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LeafHash past the size: %v", err)
	}
}

// TestProofsSmallCaches serves proofs through every cache path: full
// tiles evicted, tops kept or evicted too.
func TestProofsSmallCaches(t *testing.T) {
	tr := newEdgeTree()
	for i := range 6000 {
		tr.add(edgeLeaf(i, "c"))
	}
	for _, tiles := range []int{1, 3, 64} {
		t.Run(fmt.Sprint(tiles), func(t *testing.T) {
			s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true, TileCacheSize: tiles})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Apply(1, tr.leaves); err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(7, uint64(tiles)))
			for range 300 {
				size := 1 + rnd.Uint64N(6000)
				checkInclusion(t, s, tr, rnd.Uint64N(size), size)
				checkConsistency(t, s, tr, rnd.Uint64N(size+1), size)
			}
		})
	}
}

func TestClockSecondChance(t *testing.T) {
	c := newClock[int](2)
	yes := func() bool { return true }
	c.put([2]uint64{0, 1}, 1, yes)
	c.put([2]uint64{0, 2}, 2, yes)
	c.get([2]uint64{0, 1})         // used: survives the next eviction
	c.put([2]uint64{0, 3}, 3, yes) // evicts 2
	if _, ok := c.get([2]uint64{0, 2}); ok {
		t.Fatal("2 was kept")
	}
	for _, k := range []uint64{1, 3} {
		if v, ok := c.get([2]uint64{0, k}); !ok || v != int(k) {
			t.Fatalf("get %d = %d, %v", k, v, ok)
		}
	}
	c.put([2]uint64{0, 4}, 4, func() bool { return false })
	if _, ok := c.get([2]uint64{0, 4}); ok {
		t.Fatal("put refused by ok was kept")
	}
	c.clear()
	if _, ok := c.get([2]uint64{0, 1}); ok || len(c.m) != 0 {
		t.Fatal("clear kept entries")
	}
}
