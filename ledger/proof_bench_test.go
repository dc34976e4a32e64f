package ledger

import (
	"os"
	"strconv"
	"testing"
)

// BenchmarkProofs serves proofs and reads from a store of 1M entries
// (LEDGER_BENCH_ENTRIES overrides), built once without fsync, at indices
// spread over the whole tree: with the default tile cache (2048 full
// tiles, LEDGER_BENCH_TILE_CACHE overrides) about half of the 3906
// level-0 tiles the proofs need are cache misses.
//
//	go test -run '^$' -bench Proofs -benchtime 2s ./ledger/
func BenchmarkProofs(b *testing.B) {
	env := func(name string, def uint64) uint64 {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 2 {
			b.Fatalf("%s=%q", name, v)
		}
		return n
	}
	size := env("LEDGER_BENCH_ENTRIES", 1_000_000)
	cache := env("LEDGER_BENCH_TILE_CACHE", 0)
	s, err := OpenStore(b.TempDir(), StoreOptions{NoSync: true, TileCacheSize: int(cache)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const per = 10_000
	batch := make([][]byte, 0, per)
	seq := uint64(1)
	for i := uint64(0); i < size; i++ {
		batch = append(batch, edgeLeaf(int(i), "bench"))
		if len(batch) == per || i == size-1 {
			if _, err := s.Apply(seq, batch); err != nil {
				b.Fatal(err)
			}
			seq++
			batch = batch[:0]
		}
	}
	// Steady state: every tile read once (the first read of a full tile
	// costs a Get and 255 hashes, whatever the cache).
	for i := uint64(0); i < size; i += 256 {
		if _, err := s.InclusionProof(i, size); err != nil {
			b.Fatal(err)
		}
	}
	// idx spreads the indices over the whole tree, deterministically.
	idx := func(i int) uint64 { return uint64(i) * 7919 % size }

	b.Run("InclusionProof", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.InclusionProof(idx(i), size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("InclusionProofOldSize", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			old := size/2 + idx(i)%(size/2) + 1
			if _, err := s.InclusionProof(idx(i)%old, old); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ConsistencyProof", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.ConsistencyProof(idx(i)+1, size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RootAt", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.RootAt(idx(i) + 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Leaf", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.Leaf(idx(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LeafHash", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := s.LeafHash(idx(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Leaves1000", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			start := idx(i) % (size - 1000)
			if _, err := s.Leaves(start, start+1000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/entry")
	})
	b.Run("Leaf×1000", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			start := idx(i) % (size - 1000)
			for j := start; j < start+1000; j++ {
				if _, err := s.Leaf(j); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/entry")
	})
}
