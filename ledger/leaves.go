package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Leaves returns the leaf bytes of entries [start, end) with one range
// read (one Pebble iterator, not a lookup per entry). end must not exceed
// the committed size. The leaves share one buffer; each has its own
// capacity, so appending to one never changes another.
func (s *Store) Leaves(start, end uint64) ([][]byte, error) {
	if cur := s.State().Size; end > cur {
		return nil, fmt.Errorf("%w: entries up to %d are beyond the current size %d", ErrInvalid, end, cur)
	}
	if start >= end {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(start), UpperBound: entryKey(end)})
	if err != nil {
		return nil, fmt.Errorf("ledger: read entries: %w", err)
	}
	defer it.Close()
	n := int(end - start)
	ends := make([]int, 0, n)
	var buf []byte
	want := start
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 10 || binary.BigEndian.Uint64(k[2:]) != want {
			break // a gap (or a stray key): the first missing entry, below
		}
		v := it.Value()
		if buf == nil {
			buf = make([]byte, 0, len(v)*n+len(v)*n/8)
		}
		buf = append(buf, v...)
		ends = append(ends, len(buf))
		want++
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("ledger: read entries: %w", err)
	}
	if want != end {
		return nil, fmt.Errorf("%w: entry %d missing below tree size", ErrCorrupt, want)
	}
	leaves := make([][]byte, n)
	from := 0
	for i, to := range ends {
		leaves[i] = buf[from:to:to]
		from = to
	}
	return leaves, nil
}
