package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/merkle"
)

// The leaf-hash index (IndexByLeafHash). Every entry used to get a key
// h/<leaf hash> → index: one random key per event, a fifth of a batch's
// apply cost in the LSM through flushes and compactions (not writing it:
// 17.9/16.6 → 13.3/14.3 µs per event in the store alone, 24.2/33.7/28.1
// → 23.1/28.0/23.6 µs of server CPU per batch-appended event). The index
// is now written once per group of 2^16 entries, when the group
// completes, as at most 256 keys
//
//	H/<bucket:1><group:4 BE> → (hash[1:9] || offset:2 BE)*, sorted
//
// where bucket is the leaf hash's first byte and offset the entry's
// index within the group: 1/256 of a key per event, written in key order
// in one batch, the same on every node (it depends on the log only). The
// entries of the open group and of the last completed one are in memory
// (hashTail), rebuilt from the level-0 tiles at open and after a
// restore. Stores written before keep their h/ keys, which are read too.
//
// A lookup tries memory, then the h/ key (if the store has any), then its
// bucket's group keys (one iterator over H/<bucket>: a value of ~2.5 KiB
// per 65,536 entries, kept in the sstables, not in blob files), and
// confirms each candidate against the entry's leaf hash, so a shared
// 8-byte prefix or a memory entry of a batch that failed costs a check,
// never a wrong answer. At ~10M entries a lookup takes ~0.1 ms
// (BenchmarkIndexByLeafHash), growing by ~0.7 µs per group.
const (
	tagHashGroup         = 'H'
	defaultHashGroupBits = 16
	hashRecord           = 8 + 2 // hash[1:9], offset
)

// hashIndex is the Store's in-memory part of the leaf-hash index.
type hashIndex struct {
	bits uint8 // group size 1<<bits (tests use small groups)
	mu   sync.RWMutex
	tail map[merkle.Hash]uint64 // entries of the open and the last completed group
	// legacy: the store has per-entry h/ keys (written by key-space
	// version 1); lookups skip that Get (~30 µs on a miss) without them.
	legacy bool
}

func (x *hashIndex) group(index uint64) uint64 { return index >> x.bits }

func hashGroupKey(bucket byte, group uint64) []byte {
	k := []byte{tagHashGroup, '/', bucket, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[3:], uint32(group))
	return k
}

// load rebuilds the tail of a store of the given size from its level-0
// tiles. The caller holds the apply lock (or is opening the store).
func (s *Store) loadHashTail(size uint64) error {
	x := &s.hashes
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tail = make(map[merkle.Hash]uint64)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagHash, '/'}, UpperBound: []byte{tagHash, '/' + 1}})
	if err != nil {
		return fmt.Errorf("ledger: leaf-hash index: %w", err)
	}
	x.legacy = it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("ledger: leaf-hash index: %w", err)
	}
	from := uint64(0)
	if g := x.group(size); g > 0 {
		from = (g - 1) << x.bits
	}
	for t := from / merkle.TileWidth; t*merkle.TileWidth < size; t++ {
		row, err := s.tileRow(0, t)
		if err != nil {
			return err
		}
		for j, h := range row {
			if i := t*merkle.TileWidth + uint64(j); i >= from && i < size {
				x.tail[h] = i
			}
		}
	}
	return nil
}

// addHashes records a batch's new entries, from old to size, and writes
// the index of every group the batch completes into b. The caller holds
// the apply lock; the batch's entries are prepared, not yet committed.
func (s *Store) addHashes(b *pebble.Batch, results []Result, old, size uint64) error {
	x := &s.hashes
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range results {
		if r := &results[i]; !r.Duplicate {
			x.tail[r.LeafHash] = r.Index
		}
	}
	done := x.group(size) // groups below are complete
	for g := x.group(old); g < done; g++ {
		if err := x.writeGroup(b, g); err != nil {
			return err
		}
	}
	if done > x.group(old) && done >= 2 {
		// The groups before the last completed one are in Pebble: their
		// keys went into an earlier batch, visible since it was prepared.
		keep := (done - 1) << x.bits
		for h, i := range x.tail {
			if i < keep {
				delete(x.tail, h)
			}
		}
	}
	return nil
}

// writeGroup writes group g's keys from the tail.
func (x *hashIndex) writeGroup(b *pebble.Batch, g uint64) error {
	if g > math.MaxUint32 { // 2^48 entries: the key holds 4 bytes of group
		return fmt.Errorf("%w: leaf-hash index: group %d", ErrTooLarge, g)
	}
	lo, hi := g<<x.bits, (g+1)<<x.bits // offsets fit 2 bytes: bits ≤ 16
	var buckets [256][][hashRecord]byte
	n := 0
	for h, i := range x.tail {
		if i < lo || i >= hi {
			continue
		}
		var rec [hashRecord]byte
		copy(rec[:8], h[1:9])
		binary.BigEndian.PutUint16(rec[8:], uint16(i-lo))
		buckets[h[0]] = append(buckets[h[0]], rec)
		n++
	}
	if n != int(hi-lo) {
		return fmt.Errorf("%w: leaf-hash index: group %d has %d entries in memory, want %d", ErrCorrupt, g, n, hi-lo)
	}
	for bucket, recs := range buckets {
		if len(recs) == 0 {
			continue
		}
		slices.SortFunc(recs, func(a, b [hashRecord]byte) int { return bytes.Compare(a[:], b[:]) })
		v := make([]byte, 0, len(recs)*hashRecord)
		for _, r := range recs {
			v = append(v, r[:]...)
		}
		if err := b.Set(hashGroupKey(byte(bucket), g), v, nil); err != nil {
			return err
		}
	}
	return nil
}

// IndexByLeafHash returns the index of the entry whose leaf hash is h.
func (s *Store) IndexByLeafHash(h merkle.Hash) (uint64, error) {
	size := s.State().Size
	s.hashes.mu.RLock()
	idx, ok := s.hashes.tail[h]
	legacy := s.hashes.legacy
	s.hashes.mu.RUnlock()
	if ok && idx < size {
		if match, err := s.isLeafHash(idx, h); err != nil || match {
			return idx, err
		}
	}
	if legacy { // written before the group index: one key per entry
		idx, err := s.indexOf(hashKey(h), size)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return idx, err
		}
	}
	if idx, ok, err := s.searchHashGroups(h, size); err != nil || ok {
		return idx, err
	}
	return 0, fmt.Errorf("%w: leaf hash %x", ErrNotFound, h[:])
}

// searchHashGroups looks h up in its bucket's group keys.
func (s *Store) searchHashGroups(h merkle.Hash, size uint64) (uint64, bool, error) {
	lo, hi := []byte{tagHashGroup, '/', h[0]}, []byte{tagHashGroup, '/', h[0] + 1}
	if h[0] == 0xff {
		hi = []byte{tagHashGroup, '/' + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, false, fmt.Errorf("ledger: leaf-hash index: %w", err)
	}
	defer it.Close()
	want := h[1:9]
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 7 {
			return 0, false, fmt.Errorf("%w: leaf-hash index key %q", ErrCorrupt, k)
		}
		base := uint64(binary.BigEndian.Uint32(k[3:])) << s.hashes.bits
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, false, fmt.Errorf("ledger: leaf-hash index: %w", err)
		}
		if len(v)%hashRecord != 0 {
			return 0, false, fmt.Errorf("%w: leaf-hash index value of %d bytes", ErrCorrupt, len(v))
		}
		n := len(v) / hashRecord
		for j := firstRecord(v, want); j < n && bytes.Equal(v[j*hashRecord:j*hashRecord+8], want); j++ {
			idx := base + uint64(binary.BigEndian.Uint16(v[j*hashRecord+8:]))
			if idx >= size {
				continue
			}
			match, err := s.isLeafHash(idx, h)
			if err != nil {
				return 0, false, err
			}
			if match {
				return idx, true, nil
			}
		}
	}
	return 0, false, it.Error()
}

// firstRecord is the first record of v whose hash bytes are ≥ want.
func firstRecord(v, want []byte) int {
	lo, hi := 0, len(v)/hashRecord
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(v[m*hashRecord:m*hashRecord+8], want) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// isLeafHash reports whether the entry at idx has leaf hash h (reading
// and hashing the entry took half the time of reading its tile row).
func (s *Store) isLeafHash(idx uint64, h merkle.Hash) (bool, error) {
	leaf, err := s.Leaf(idx)
	if err != nil {
		return false, err
	}
	return merkle.LeafHash(leaf) == h, nil
}
