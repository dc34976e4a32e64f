package ledger

import (
	"fmt"
	"hash/maphash"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
)

// idFilter is an in-memory Bloom filter over every stored event id. Apply
// asks it before looking an id up in Pebble: a "no" is certain (Bloom
// filters have no false negatives), so new ids, the common case, skip the
// lookup; a "maybe" (about 1% of new ids) falls back to Pebble. It never
// changes what Apply decides, only how fast, so Apply stays deterministic.
//
// It grows as a list of filters, each twice the capacity of the one
// before, and is rebuilt from the id table when the store opens. Its bits
// live outside the Go heap (allocWords); free releases them.
// Not safe for concurrent use: the store's apply lock guards it.
type idFilter struct {
	seed  maphash.Seed
	parts []*bloomPart
}

type bloomPart struct {
	words []uint64
	free  func()
	mask  uint64 // number of bits - 1 (a power of two)
	n     int
	cap   int
}

const (
	bloomBitsPerID = 10 // ~1% false positives with bloomProbes
	bloomProbes    = 7
	bloomFirstCap  = 1 << 16
)

func newIDFilter() *idFilter { return &idFilter{seed: maphash.MakeSeed()} }

func newBloomPart(capacity int) *bloomPart {
	nbits := uint64(1) << bits.Len64(uint64(capacity*bloomBitsPerID-1))
	words, free := allocWords(int(nbits / 64))
	return &bloomPart{words: words, free: free, mask: nbits - 1, cap: capacity}
}

// free releases the filter's memory; it must not be used afterwards.
func (f *idFilter) free() {
	if f == nil {
		return
	}
	for _, b := range f.parts {
		b.words = nil
		b.free()
	}
	f.parts = nil
}

func (f *idFilter) add(id string) {
	if len(f.parts) == 0 || f.parts[len(f.parts)-1].n >= f.parts[len(f.parts)-1].cap {
		c := bloomFirstCap
		if len(f.parts) > 0 {
			c = 2 * f.parts[len(f.parts)-1].cap
		}
		f.parts = append(f.parts, newBloomPart(c))
	}
	h := maphash.String(f.seed, id)
	b := f.parts[len(f.parts)-1]
	h1, h2 := h, h>>32|1
	for i := uint64(0); i < bloomProbes; i++ {
		bit := (h1 + i*h2) & b.mask
		b.words[bit/64] |= 1 << (bit % 64)
	}
	b.n++
}

func (f *idFilter) mayContain(id string) bool {
	h := maphash.String(f.seed, id)
	h1, h2 := h, h>>32|1
	for _, b := range f.parts {
		hit := true
		for i := uint64(0); i < bloomProbes; i++ {
			bit := (h1 + i*h2) & b.mask
			if b.words[bit/64]&(1<<(bit%64)) == 0 {
				hit = false
				break
			}
		}
		if hit {
			return true
		}
	}
	return false
}

// loadIDFilter builds the filter from the id table.
func (s *Store) loadIDFilter() error {
	f := newIDFilter()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagID, '/'}, UpperBound: []byte{tagID, '/' + 1}})
	if err != nil {
		return fmt.Errorf("ledger: load id filter: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		f.add(string(it.Key()[2:]))
	}
	if err := it.Error(); err != nil {
		f.free()
		return fmt.Errorf("ledger: load id filter: %w", err)
	}
	s.ids.free() // the filter of the store's content before a Restore
	s.ids = f
	return nil
}
