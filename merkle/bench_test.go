package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// Run with:
//
//	go test -run='^$' -bench=. -benchtime=2s ./merkle/
//
// The proof benchmarks build a 2^24-leaf tree in memory once (every full
// node, about 1 GiB, a few seconds; leaf hashes are synthetic to save time).

var benchSink Hash

// twoSHA times n iterations of two SHA-256 calls over 65 bytes, the cost of
// hashing one leaf (0x00 || 64-byte entry) plus one interior node.
func twoSHA(n int) time.Duration {
	var buf [1 + 2*HashSize]byte
	var acc Hash
	start := time.Now()
	for i := 0; i < n; i++ {
		buf[0] = byte(i)
		a := sha256.Sum256(buf[:])
		buf[1] = a[0]
		c := sha256.Sum256(buf[:])
		acc[0] ^= c[0]
	}
	d := time.Since(start)
	benchSink = acc
	return d
}

// BenchmarkAppend measures appending to the compact range.
//
//	hashes:  Append of precomputed leaf hashes (what Range itself costs,
//	         one NodeHash per leaf on average);
//	entries: LeafHash of a 64-byte entry + Append (the ledger's ingest path,
//	         two SHA-256 calls per leaf on average).
//
// Each reports ratio-vs-2sha: its time per leaf divided by the time of two
// sha256.Sum256 calls over 65 bytes measured in the same run.
func BenchmarkAppend(b *testing.B) {
	b.Run("hashes", func(b *testing.B) { benchAppend(b, false) })
	b.Run("entries", func(b *testing.B) { benchAppend(b, true) })
}

func benchAppend(b *testing.B, entries bool) {
	const mask = 1<<12 - 1
	leaves := make([]Hash, mask+1)
	data := make([][]byte, mask+1)
	for i := range leaves {
		data[i] = make([]byte, 64)
		binary.BigEndian.PutUint64(data[i], uint64(i))
		leaves[i] = LeafHash(data[i])
	}
	r := NewRange()
	b.ReportAllocs()
	b.ResetTimer()
	// Appends and the two-SHA baseline run in alternating chunks, so that
	// load from other processes drifting during the run hits both alike;
	// only the appends count towards ns/op.
	var tAppend, tBase time.Duration
	for done := 0; done < b.N; {
		n := min(1<<12, b.N-done)
		start := time.Now()
		if entries {
			for i := done; i < done+n; i++ {
				r.Append(LeafHash(data[i&mask]), nil)
			}
		} else {
			for i := done; i < done+n; i++ {
				r.Append(leaves[i&mask], nil)
			}
		}
		tAppend += time.Since(start)
		b.StopTimer()
		tBase += twoSHA(n)
		b.StartTimer()
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(tAppend)/float64(tBase), "ratio-vs-2sha")
	b.ReportMetric(float64(tBase.Nanoseconds())/float64(b.N), "2sha-ns")
	b.ReportMetric(float64(b.N)/tAppend.Seconds(), "leaves/s")
	benchSink = r.Root()
}

const benchLog = 24

// smallHeapGC makes the GC reclaim garbage every ~100 MiB instead of every
// 1 GiB (the size of the in-memory tree), so the per-proof allocations reuse
// warm memory as they would in a server, rather than page-faulting fresh
// memory for the first GiB.
const smallHeapGC = 10

type benchTree struct {
	store   *nodeStore
	size    uint64
	root    Hash
	idx     []uint64 // random leaf indices
	olds    []uint64 // random old sizes
	oldRoot []Hash
	incl    [][]Hash
	cons    [][]Hash
}

var bigTree = sync.OnceValue(func() *benchTree {
	const n = 1 << benchLog
	s := &nodeStore{levels: make([][]Hash, benchLog+1)}
	for l := range s.levels {
		s.levels[l] = make([]Hash, 0, n>>l)
	}
	r := NewRange()
	var leaf Hash
	copy(leaf[8:], "synthetic leaf hash")
	for i := uint64(0); i < n; i++ {
		binary.BigEndian.PutUint64(leaf[:8], i)
		r.Append(leaf, s.visit)
	}
	t := &benchTree{store: s, size: n, root: r.Root()}
	rng := rand.New(rand.NewPCG(7, 8))
	for k := 0; k < 1024; k++ {
		i, m := rng.Uint64N(n), 1+rng.Uint64N(n-1)
		t.idx, t.olds = append(t.idx, i), append(t.olds, m)
		root, _ := RootFromNodes(m, s.fetch(RangeNodes(m)))
		t.oldRoot = append(t.oldRoot, root)
		in, _ := InclusionNodes(i, n)
		p, _ := in.Rehash(s.fetch(in.IDs))
		t.incl = append(t.incl, p)
		cn, _ := ConsistencyNodes(m, n)
		p, _ = cn.Rehash(s.fetch(cn.IDs))
		t.cons = append(t.cons, p)
	}
	runtime.GC() // settle the 1 GiB heap before anything is timed
	return t
})

// BenchmarkInclusionProof: for a 2^24-leaf tree held in memory,
// Nodes = node-ID computation (InclusionNodes), Assemble = node IDs + fetch
// from memory + Rehash, Verify = VerifyInclusion.
func BenchmarkInclusionProof(b *testing.B) {
	t := bigTree()
	defer debug.SetGCPercent(debug.SetGCPercent(smallHeapGC))
	b.Run("Nodes", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := InclusionNodes(t.idx[i&1023], t.size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Assemble", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			n, _ := InclusionNodes(t.idx[i&1023], t.size)
			if _, err := n.Rehash(t.store.fetch(n.IDs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			k := i & 1023
			leaf := t.store.get(NodeID{0, t.idx[k]})
			if err := VerifyInclusion(leaf, t.idx[k], t.size, t.incl[k], t.root); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConsistencyProof: as BenchmarkInclusionProof, from a random old
// size to 2^24.
func BenchmarkConsistencyProof(b *testing.B) {
	t := bigTree()
	defer debug.SetGCPercent(debug.SetGCPercent(smallHeapGC))
	b.Run("Nodes", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := ConsistencyNodes(t.olds[i&1023], t.size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Assemble", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			n, _ := ConsistencyNodes(t.olds[i&1023], t.size)
			if _, err := n.Rehash(t.store.fetch(n.IDs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			k := i & 1023
			if err := VerifyConsistency(t.olds[k], t.size, t.cons[k], t.oldRoot[k], t.root); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLeafHash and BenchmarkNodeHash give the raw hashing costs.
func BenchmarkLeafHash(b *testing.B) {
	data := make([]byte, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		data[0] = byte(i)
		benchSink = LeafHash(data)
	}
}

func BenchmarkNodeHash(b *testing.B) {
	var l, r Hash
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l[0] = byte(i)
		benchSink = NodeHash(l, r)
	}
}

// BenchmarkRoot: Root of a range holding 24 subtrees.
func BenchmarkRoot(b *testing.B) {
	r, _ := RestoreRange(1<<24-1, make([]Hash, 24))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		benchSink = r.Root()
	}
}
