package query

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// Receive time and index order.
//
// The server stamps each event's receive time, and entries are numbered
// in commit order, so receive time almost rises with the index: one
// leader stamps a batch with one clock reading and group commit keeps the
// order of arrival. Almost: appends stamped concurrently can commit in
// the other order, and after a leader change (or through forwarding) the
// stamps come from another node's clock. So a receive-time range maps to
// an index range only with a bound on that disorder.
//
// The index keeps, deterministically from the log alone:
//
//   - Mk(i), the largest receive time of entries 0..i in whole
//     milliseconds (monotone in i), as a mark (Mk, i) at every i where
//     Mk rises;
//   - lag, the largest Mk(i) - ms(i) seen, where ms(i) is entry i's own
//     receive time in milliseconds.
//
// For a range from <= t < to, with F = ms(from) and E = ms(to - 1):
//
//   - entries below the first mark with Mk >= F have t < from (lo);
//   - entries at or above the first mark with Mk > E + lag have t >= to,
//     since ms(i) >= Mk(i) - lag > E (hi);
//   - entries at or above the first mark with Mk >= F + lag + 1 certainly
//     have t >= from (clo), and entries below the first mark with
//     Mk >= ms(to) certainly have t < to (chi).
//
// Queries scan [lo, hi) and check the receive time of the entries
// outside [clo, chi) exactly. With the disorder of one node's batches
// that edge is a millisecond or two of entries; a node whose clock was
// an hour behind widens it to an hour on the upper side, which costs
// reads, never results.

// span is the index range a receive-time filter allows.
type span struct {
	lo, hi   uint64 // candidates: lo <= i < hi
	clo, chi uint64 // inside [clo, chi) the receive time is in range
}

// timeSpan computes the span of from <= t < to (nanoseconds; hasFrom and
// hasTo say which bounds apply) over the entries below size.
func timeSpan(db *pebble.DB, size uint64, from, to int64, hasFrom, hasTo bool) (span, error) {
	sp := span{lo: 0, hi: size, clo: 0, chi: size}
	if !hasFrom && !hasTo {
		return sp, nil
	}
	lag, err := readLag(db)
	if err != nil {
		return sp, err
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: tablePrefix(tagMarks), UpperBound: prefixEnd(tablePrefix(tagMarks))})
	if err != nil {
		return sp, fmt.Errorf("query: marks: %w", err)
	}
	defer it.Close()
	// firstAtLeast is the index of the first mark with Mk >= ms, or size.
	firstAtLeast := func(ms int64) (uint64, error) {
		if !it.SeekGE(markKey(ms, 0)) {
			return size, it.Error()
		}
		_, at, ok := decodeMark(it.Key())
		if !ok {
			return 0, fmt.Errorf("%w: query: mark key %x", ledger.ErrCorrupt, it.Key())
		}
		return min(at, size), nil
	}
	const msNs = int64(time.Millisecond)
	if hasFrom {
		f := floorDiv(from, msNs)
		if sp.lo, err = firstAtLeast(f); err != nil {
			return sp, err
		}
		if sp.clo, err = firstAtLeast(satAdd(f, satAdd(lag, 1))); err != nil {
			return sp, err
		}
	}
	if hasTo {
		if to == minInt64 {
			return span{}, nil
		}
		e := floorDiv(to-1, msNs)
		if sp.hi, err = firstAtLeast(satAdd(e, satAdd(lag, 1))); err != nil {
			return sp, err
		}
		if sp.chi, err = firstAtLeast(floorDiv(to, msNs)); err != nil {
			return sp, err
		}
	}
	if sp.hi < sp.lo {
		sp.hi = sp.lo
	}
	sp.clo = min(max(sp.clo, sp.lo), sp.hi)
	sp.chi = max(min(sp.chi, sp.hi), sp.clo)
	return sp, nil
}

// satAdd adds without overflowing past the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return maxInt64
	}
	if b < 0 && s > a {
		return minInt64
	}
	return s
}

func readLag(db *pebble.DB) (int64, error) {
	v, closer, err := db.Get(keyLag)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("query: read lag: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: query: lag value", ledger.ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
