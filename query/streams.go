package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// stream produces candidate indices in the plan's order.
type stream interface {
	// next returns the next candidate; ok is false at the end.
	next() (index uint64, ok bool, err error)
	// pos is the cursor position of the last candidate returned.
	pos() []byte
	close()
}

// open starts the plan's candidate stream after resume (a cursor
// position; nil from the start). scanned counts the rows it touches.
func (p *plan) open(ctx context.Context, db *pebble.DB, resume []byte, scanned *int64) (stream, error) {
	lo, hi := p.sp.lo, p.sp.hi // candidates lo <= i < hi
	if resume != nil && p.driver != driverTimestamp {
		last := binary.BigEndian.Uint64(resume)
		if p.desc {
			hi = min(hi, last)
		} else {
			lo = max(lo, last+1)
			if last == ^uint64(0) {
				lo = hi
			}
		}
	}
	switch p.driver {
	case driverPostings:
		j := &joinStream{desc: p.desc, scanned: scanned, done: lo >= hi}
		if j.done {
			return j, nil
		}
		j.target = lo
		if p.desc {
			j.target = hi - 1
		}
		for _, prefix := range p.terms {
			ps, err := openPosting(ctx, db, prefix, lo, hi)
			if err != nil {
				j.close()
				return nil, err
			}
			j.srcs = append(j.srcs, ps)
		}
		return j, nil
	case driverScan:
		s := &scanStream{desc: p.desc, lo: lo, hi: hi, next_: lo}
		if p.desc {
			s.next_ = hi - 1
		}
		return s, nil
	default:
		return openTSStream(ctx, db, p, resume, scanned)
	}
}

// posting iterates one posting list within an index range.
type posting struct {
	it     *pebble.Iterator
	prefix int // length of the value prefix in keys
	key    []byte
	cur    uint64
	valid  bool
}

func openPosting(ctx context.Context, db *pebble.DB, prefix []byte, lo, hi uint64) (*posting, error) {
	lower := binary.BigEndian.AppendUint64(bytes.Clone(prefix), lo)
	upper := binary.BigEndian.AppendUint64(bytes.Clone(prefix), hi)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("query: open posting list: %w", err)
	}
	return &posting{it: it, prefix: len(prefix), key: bytes.Clone(prefix)}, nil
}

func (p *posting) load(ok bool) (uint64, bool, error) {
	if !ok {
		p.valid = false
		return 0, false, p.it.Error()
	}
	k := p.it.Key()
	if len(k) != p.prefix+8 {
		p.valid = false
		return 0, false, fmt.Errorf("%w: query: posting key %q", ledger.ErrCorrupt, k)
	}
	p.cur, p.valid = binary.BigEndian.Uint64(k[p.prefix:]), true
	return p.cur, true, nil
}

func (p *posting) seekKey(i uint64) []byte {
	p.key = binary.BigEndian.AppendUint64(p.key[:p.prefix], i)
	return p.key
}

// seekGE positions at the first index >= t.
func (p *posting) seekGE(t uint64) (uint64, bool, error) {
	if p.valid {
		if p.cur >= t {
			return p.cur, true, nil
		}
		// The next posting is often the target: step before seeking.
		if i, ok, err := p.load(p.it.Next()); err != nil || !ok || i >= t {
			return i, ok, err
		}
	}
	return p.load(p.it.SeekGE(p.seekKey(t)))
}

// seekLE positions at the last index <= t.
func (p *posting) seekLE(t uint64) (uint64, bool, error) {
	if p.valid {
		if p.cur <= t {
			return p.cur, true, nil
		}
		if i, ok, err := p.load(p.it.Prev()); err != nil || !ok || i <= t {
			return i, ok, err
		}
	}
	if t == ^uint64(0) {
		return p.load(p.it.Last())
	}
	return p.load(p.it.SeekLT(p.seekKey(t + 1)))
}

// joinStream is a leapfrog join of posting lists: each list seeks to the
// largest (smallest, descending) candidate any list has reached, until
// all agree. It reads about as many postings as the rarest list has,
// times the number of lists, whatever the sizes of the others.
type joinStream struct {
	srcs    []*posting
	desc    bool
	target  uint64
	last    uint64
	done    bool
	scanned *int64
}

func (j *joinStream) next() (uint64, bool, error) {
	if j.done {
		return 0, false, nil
	}
	t := j.target
	for agree, i := 0, 0; agree < len(j.srcs); i = (i + 1) % len(j.srcs) {
		var x uint64
		var ok bool
		var err error
		if j.desc {
			x, ok, err = j.srcs[i].seekLE(t)
		} else {
			x, ok, err = j.srcs[i].seekGE(t)
		}
		*j.scanned++
		if err != nil || !ok {
			j.done = true
			return 0, false, err
		}
		if x == t {
			agree++
		} else {
			t, agree = x, 1
		}
	}
	j.last = t
	if j.desc {
		j.done = t == 0
		j.target = t - 1
	} else {
		j.done = t == ^uint64(0)
		j.target = t + 1
	}
	return t, true, nil
}

func (j *joinStream) pos() []byte { return binary.BigEndian.AppendUint64(nil, j.last) }

func (j *joinStream) close() {
	for _, s := range j.srcs {
		s.it.Close()
	}
}

// scanStream yields every index of a range.
type scanStream struct {
	desc   bool
	lo, hi uint64
	next_  uint64
	last   uint64
}

func (s *scanStream) next() (uint64, bool, error) {
	if s.lo >= s.hi || s.next_ < s.lo || s.next_ >= s.hi {
		return 0, false, nil
	}
	s.last = s.next_
	if s.desc {
		if s.next_ == 0 {
			s.hi = 0
		}
		s.next_--
	} else {
		s.next_++
	}
	return s.last, true, nil
}

func (s *scanStream) pos() []byte { return binary.BigEndian.AppendUint64(nil, s.last) }
func (s *scanStream) close()      {}

// tsStream reads the event-timestamp table in time order.
type tsStream struct {
	it      *pebble.Iterator
	desc    bool
	started bool
	lo, hi  uint64
	last    []byte
	scanned *int64
}

func openTSStream(ctx context.Context, db *pebble.DB, p *plan, resume []byte, scanned *int64) (*tsStream, error) {
	lower := appendTimestampKey(nil, p.tsFrom.sec, p.tsFrom.nsec, 0)
	upper := appendTimestampKey(nil, p.tsTo.sec, p.tsTo.nsec, 0)
	if !p.hasTSFrom {
		lower = tablePrefix(tagTimestamp)
	}
	if !p.hasTSTo {
		upper = prefixEnd(tablePrefix(tagTimestamp))
	}
	if resume != nil {
		k := append(tablePrefix(tagTimestamp), resume...)
		if p.desc {
			if bytes.Compare(k, upper) < 0 {
				upper = k
			}
		} else if k = append(k, 0); bytes.Compare(k, lower) > 0 {
			lower = k
		}
	}
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("query: open timestamp table: %w", err)
	}
	return &tsStream{it: it, desc: p.desc, lo: p.sp.lo, hi: p.sp.hi, scanned: scanned}, nil
}

func (s *tsStream) next() (uint64, bool, error) {
	for {
		var ok bool
		switch {
		case !s.started && s.desc:
			ok = s.it.Last()
		case !s.started:
			ok = s.it.First()
		case s.desc:
			ok = s.it.Prev()
		default:
			ok = s.it.Next()
		}
		s.started = true
		if !ok {
			return 0, false, s.it.Error()
		}
		*s.scanned++
		k := s.it.Key()
		if len(k) != timestampKeyLen {
			return 0, false, fmt.Errorf("%w: query: timestamp key %x", ledger.ErrCorrupt, k)
		}
		idx := binary.BigEndian.Uint64(k[timestampKeyLen-8:])
		if idx < s.lo || idx >= s.hi {
			continue // outside the receive-time span or not committed yet
		}
		s.last = append(s.last[:0], k[4:]...)
		return idx, true, nil
	}
}

func (s *tsStream) pos() []byte { return bytes.Clone(s.last) }
func (s *tsStream) close()      { s.it.Close() }

// fraction is how far through the plan's timestamp range the stream is
// (ascending), for estimates.
func (s *tsStream) fraction(db *pebble.DB, p *plan) float64 {
	if len(s.last) != timestampKeyLen-4 {
		return 0
	}
	at := unflip(binary.BigEndian.Uint64(s.last))
	from, to := p.tsFrom.sec, p.tsTo.sec
	if !p.hasTSFrom || !p.hasTSTo {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: tablePrefix(tagTimestamp), UpperBound: prefixEnd(tablePrefix(tagTimestamp))})
		if err != nil {
			return 0
		}
		defer it.Close()
		if !p.hasTSFrom && it.First() {
			from = unflip(binary.BigEndian.Uint64(it.Key()[4:]))
		}
		if !p.hasTSTo && it.Last() {
			to = unflip(binary.BigEndian.Uint64(it.Key()[4:])) + 1
		}
	}
	if to <= from {
		return 0
	}
	return float64(at-from+1) / float64(to-from)
}

// leafReader fetches entries by index with one iterator.
type leafReader struct {
	it *pebble.Iterator
}

func openLeaves(ctx context.Context, db *pebble.DB, p *plan) (*leafReader, error) {
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: ledger.EntryKey(0), UpperBound: ledger.EntryKey(p.size)})
	if err != nil {
		return nil, fmt.Errorf("query: open entries: %w", err)
	}
	return &leafReader{it: it}, nil
}

// get returns the leaf at index; it is valid until the next call.
func (l *leafReader) get(index uint64) ([]byte, error) {
	k := ledger.EntryKey(index)
	if !l.it.SeekGE(k) || !bytes.Equal(l.it.Key(), k) {
		if err := l.it.Error(); err != nil {
			return nil, fmt.Errorf("query: read entry %d: %w", index, err)
		}
		return nil, fmt.Errorf("%w: query: entry %d is indexed but missing", ledger.ErrCorrupt, index)
	}
	v, err := l.it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("query: read entry %d: %w", index, err)
	}
	return v, nil
}

func (l *leafReader) close() { l.it.Close() }
