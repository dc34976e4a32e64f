package ledger

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ScanKV calls fn, in key order, for every committed key of a reserved
// table (see keys.go) that starts with prefix, so packages keeping state
// there (tokens, subject keys) can list it without importing Pebble. The
// key and value passed to fn are only valid during the call. prefix must
// lie in a reserved table. An error from fn stops the scan and is
// returned.
func (s *Store) ScanKV(prefix []byte, fn func(key, value []byte) error) error {
	if !reservedTag(append(bytes.Clone(prefix), 0)) {
		return fmt.Errorf("%w: prefix %q is not in a reserved table", ErrInvalid, prefix)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("ledger: scan %q: %w", prefix, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("ledger: scan %q: %w", prefix, err)
	}
	return nil
}

// prefixEnd is the least key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
