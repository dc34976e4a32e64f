package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/merkle"
)

func hashTestLeaf(i int) []byte {
	return EncodeLeaf(&Entry{
		Event:      Event{ID: fmt.Sprintf("hx-%06d", i), Actor: Actor{ID: "a"}, Action: Action{Type: "t", Resource: "r", Result: "success"}},
		ReceivedAt: int64(i),
		KeyID:      "k",
		Signature:  bytes.Repeat([]byte{byte(i)}, 32),
	})
}

// TestLeafHashIndexGroups: with groups of 64 entries, every entry is
// found by its leaf hash in memory, in completed groups, after a reopen
// in the middle of a group and at a boundary, and after a restore; an
// unknown hash is not found; completed groups are in Pebble as at most
// 256 keys each, and memory holds at most two groups.
func TestLeafHashIndexGroups(t *testing.T) {
	dir := t.TempDir()
	opts := StoreOptions{NoSync: true, hashGroupBits: 6}
	st, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	n := 0
	apply := func(k int) {
		t.Helper()
		leaves := make([][]byte, k)
		for i := range leaves {
			leaves[i] = hashTestLeaf(n + i)
		}
		n += k
		_, wait, err := st.ApplyNext(leaves)
		if err == nil {
			err = wait()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for i := range n {
			h := merkle.LeafHash(hashTestLeaf(i))
			idx, err := st.IndexByLeafHash(h)
			if err != nil || idx != uint64(i) {
				t.Fatalf("%s: entry %d: IndexByLeafHash = %d, %v", when, i, idx, err)
			}
		}
		if _, err := st.IndexByLeafHash(merkle.LeafHash([]byte("absent"))); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: unknown hash: %v", when, err)
		}
		st.hashes.mu.RLock()
		inMem := len(st.hashes.tail)
		st.hashes.mu.RUnlock()
		if inMem > 2*64 {
			t.Fatalf("%s: %d entries in memory", when, inMem)
		}
	}
	for _, k := range []int{1, 10, 60, 3, 200, 64, 7} { // 345 entries: groups 0–4 complete
		apply(k)
		check(fmt.Sprintf("after %d", n))
	}
	groups := 0
	it, _ := st.db.NewIter(&pebble.IterOptions{LowerBound: []byte("H/"), UpperBound: []byte("H0")})
	for ok := it.First(); ok; ok = it.Next() {
		groups++
	}
	it.Close()
	if groups == 0 || groups > 5*64 {
		t.Fatalf("%d group keys for 5 complete groups of 64", groups)
	}
	st.Close()
	if st, err = OpenStore(dir, opts); err != nil {
		t.Fatal(err)
	}
	check("reopened mid-group")
	apply(384 - n) // to a boundary
	st.Close()
	if st, err = OpenStore(dir, opts); err != nil {
		t.Fatal(err)
	}
	check("reopened at a boundary")
	apply(100)
	check("after more")

	sn, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Close()
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = other
	check("restored")
}

// TestLeafHashIndexLegacyKeys: a directory of key-space version 1, whose
// entries have per-entry h/ keys and no group keys, opens as version 2
// and its entries are still found.
func TestLeafHashIndexLegacyKeys(t *testing.T) {
	dir := t.TempDir()
	opts := StoreOptions{NoSync: true, hashGroupBits: 6}
	st, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, 300)
	for i := range leaves {
		leaves[i] = hashTestLeaf(i)
	}
	if _, err := st.Apply(1, leaves); err != nil {
		t.Fatal(err)
	}
	// As an older version would have left it: h/ keys, no group keys.
	b := st.db.NewBatch()
	b.DeleteRange([]byte("H/"), []byte("H0"), nil)
	for i, l := range leaves {
		b.Set(hashKey(merkle.LeafHash(l)), binaryIndex(uint64(i)), nil)
	}
	b.Set(keyFormat, []byte("1"), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = OpenStore(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.get(keyFormat); err != nil || string(v) != keySpaceVersion {
		t.Fatalf("format after opening a version-1 directory: %q, %v", v, err)
	}
	for i, l := range leaves {
		if idx, err := st.IndexByLeafHash(merkle.LeafHash(l)); err != nil || idx != uint64(i) {
			t.Fatalf("entry %d: %d, %v", i, idx, err)
		}
	}
}

func binaryIndex(i uint64) []byte {
	var b [8]byte
	for k := range b {
		b[7-k] = byte(i >> (8 * k))
	}
	return b[:]
}

// TestLeafHashIndexConcurrent: lookups while batches complete groups
// find every committed entry (run with -race).
func TestLeafHashIndexConcurrent(t *testing.T) {
	st, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true, hashGroupBits: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			default:
			}
			size := st.State().Size
			if size == 0 {
				continue
			}
			i := uint64(k*7919) % size
			if idx, err := st.IndexByLeafHash(merkle.LeafHash(hashTestLeaf(int(i)))); err != nil || idx != i {
				errc <- fmt.Errorf("entry %d of %d: %d, %v", i, size, idx, err)
				return
			}
		}
	}()
	n := 0
	for b := range 60 {
		leaves := make([][]byte, 1+b%23)
		for i := range leaves {
			leaves[i] = hashTestLeaf(n + i)
		}
		n += len(leaves)
		if _, err := st.Apply(uint64(b+1), leaves); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// FuzzLeafHashGroupValue: a damaged group value gives an error or not
// found, never a panic or a wrong index.
func FuzzLeafHashGroupValue(f *testing.F) {
	f.Add([]byte{}, byte(0))
	f.Add(bytes.Repeat([]byte{1}, 10), byte(1))
	f.Add(bytes.Repeat([]byte{0xff}, 25), byte(2))
	st, err := OpenStore(f.TempDir(), StoreOptions{NoSync: true, hashGroupBits: 4})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	leaves := make([][]byte, 40)
	for i := range leaves {
		leaves[i] = hashTestLeaf(i)
	}
	if _, err := st.Apply(1, leaves); err != nil {
		f.Fatal(err)
	}
	h := merkle.LeafHash(leaves[3]) // in group 0, on disk
	f.Fuzz(func(t *testing.T, v []byte, group byte) {
		if err := st.db.Set(hashGroupKey(h[0], uint64(group%3)), v, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		idx, err := st.IndexByLeafHash(h)
		if err == nil && idx != 3 {
			t.Fatalf("index %d for entry 3", idx)
		}
	})
}

// BenchmarkIndexByLeafHash looks up entries of completed groups, which
// are read from Pebble: with groups of 4,096 entries, 600,000 entries
// make 146 groups, as many as 9.6M entries in groups of 65,536:
// ~100 µs per lookup (2026-11-26; a Get of the per-entry key was ~30 µs),
// about 0.7 µs per group.
//
//	go test -run '^$' -bench IndexByLeafHash ./ledger/
func BenchmarkIndexByLeafHash(b *testing.B) {
	st, err := OpenStore(b.TempDir(), StoreOptions{NoSync: true, hashGroupBits: 12})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const n = 600_000
	for k := 0; k < n; k += 1000 {
		leaves := make([][]byte, 1000)
		for i := range leaves {
			leaves[i] = hashTestLeaf(k + i)
		}
		if _, err := st.Apply(uint64(k/1000+1), leaves); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		want := uint64(i*7919) % (n - 2<<12)
		if idx, err := st.IndexByLeafHash(merkle.LeafHash(hashTestLeaf(int(want)))); err != nil || idx != want {
			b.Fatalf("%d: %d, %v", want, idx, err)
		}
	}
}
