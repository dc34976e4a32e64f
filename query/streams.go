package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// source is an index-ordered set of candidate indices.
type source interface {
	// seekGE returns the least member >= t, seekLE the greatest <= t;
	// ok is false when there is none. Calls may go in either direction
	// but a stream only ever moves one way.
	seekGE(t uint64) (i uint64, ok bool, err error)
	seekLE(t uint64) (i uint64, ok bool, err error)
	close()
}

// stream is a leapfrog join of sources within [lo, hi): each source
// seeks to the largest (smallest, descending) candidate any has reached,
// until all agree. It reads about as many rows as the rarest source has,
// times the number of sources, whatever the sizes of the others.
type stream struct {
	srcs    []source
	desc    bool
	target  uint64
	last    uint64
	done    bool
	scanned *int64
}

// open starts the plan's candidate stream after resume (the last index
// returned by a previous page; nil from the start).
func (p *plan) open(ctx context.Context, db *pebble.DB, resume []byte, scanned *int64) (*stream, error) {
	lo, hi := p.sp.lo, p.sp.hi
	if resume != nil {
		last := binary.BigEndian.Uint64(resume)
		if p.desc {
			hi = min(hi, last)
		} else if last == ^uint64(0) {
			lo = hi
		} else {
			lo = max(lo, last+1)
		}
	}
	s := &stream{desc: p.desc, scanned: scanned, done: lo >= hi}
	if s.done {
		return s, nil
	}
	s.target = lo
	if p.desc {
		s.target = hi - 1
	}
	for _, t := range p.terms {
		var u union
		for _, a := range t {
			ps, err := openPosting(ctx, db, a, lo, hi)
			if err != nil {
				u.close()
				s.close()
				return nil, err
			}
			u = append(u, ps)
		}
		if len(u) == 1 {
			s.srcs = append(s.srcs, u[0])
		} else {
			s.srcs = append(s.srcs, u)
		}
	}
	if p.hasTS {
		zs, err := openZones(ctx, db, p, lo, hi)
		if err != nil {
			s.close()
			return nil, err
		}
		s.srcs = append(s.srcs, zs)
	}
	if len(s.srcs) == 0 {
		s.srcs = append(s.srcs, dense{lo, hi})
	}
	return s, nil
}

func (s *stream) next() (uint64, bool, error) {
	if s.done {
		return 0, false, nil
	}
	t := s.target
	for agree, i := 0, 0; agree < len(s.srcs); i = (i + 1) % len(s.srcs) {
		var x uint64
		var ok bool
		var err error
		if s.desc {
			x, ok, err = s.srcs[i].seekLE(t)
		} else {
			x, ok, err = s.srcs[i].seekGE(t)
		}
		*s.scanned++
		if err != nil || !ok {
			s.done = true
			return 0, false, err
		}
		if x == t {
			agree++
		} else {
			t, agree = x, 1
		}
	}
	s.last = t
	if s.desc {
		s.done = t == 0
		s.target = t - 1
	} else {
		s.done = t == ^uint64(0)
		s.target = t + 1
	}
	return t, true, nil
}

// pos is the cursor position of the last candidate returned.
func (s *stream) pos() []byte { return binary.BigEndian.AppendUint64(nil, s.last) }

func (s *stream) close() {
	for _, src := range s.srcs {
		src.close()
	}
}

// dense is every index of [lo, hi).
type dense struct{ lo, hi uint64 }

func (d dense) seekGE(t uint64) (uint64, bool, error) {
	t = max(t, d.lo)
	return t, t < d.hi, nil
}

func (d dense) seekLE(t uint64) (uint64, bool, error) {
	if d.hi == 0 {
		return 0, false, nil
	}
	t = min(t, d.hi-1)
	return t, t >= d.lo, nil
}

func (dense) close() {}

// union is the entries of any of its sources.
type union []source

func (u union) seekGE(t uint64) (uint64, bool, error) {
	var best uint64
	found := false
	for _, s := range u {
		i, ok, err := s.seekGE(t)
		if err != nil {
			return 0, false, err
		}
		if ok && (!found || i < best) {
			best, found = i, true
		}
	}
	return best, found, nil
}

func (u union) seekLE(t uint64) (uint64, bool, error) {
	var best uint64
	found := false
	for _, s := range u {
		i, ok, err := s.seekLE(t)
		if err != nil {
			return 0, false, err
		}
		if ok && (!found || i > best) {
			best, found = i, true
		}
	}
	return best, found, nil
}

func (u union) close() {
	for _, s := range u {
		s.close()
	}
}

// posting reads one value's chunks within [lo, hi): its posting list, or
// its bucket's chunks filtered to the value (which may leave a chunk
// empty; navigation skips those).
type posting struct {
	it     *pebble.Iterator
	prefix int
	key    []byte
	match  []byte // bucketed: the value entries must have; nil otherwise
	lo, hi uint64
	// The chunk the iterator is at, decoded; at is the position in it.
	chunk []uint64
	at    int
	valid bool
	// Where the list ran out: nothing >= geEnd (set by seekGE) or
	// <= leEnd (seekLE), so later seeks past it answer at once (an
	// empty alternative of a union is asked on every step).
	geEnd, leEnd       uint64
	geEndSet, leEndSet bool
}

func openPosting(ctx context.Context, db *pebble.DB, t alt, lo, hi uint64) (*posting, error) {
	// Chunks starting before lo may reach into the range; none starting
	// at or after hi can.
	upper := binary.BigEndian.AppendUint64(bytes.Clone(t.prefix), hi)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: t.prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("query: open posting list: %w", err)
	}
	return &posting{it: it, prefix: len(t.prefix), key: bytes.Clone(t.prefix), match: t.match, lo: lo, hi: hi}, nil
}

// load decodes the chunk at the iterator.
func (p *posting) load(ok bool) error {
	p.valid = false
	if !ok {
		return p.it.Error()
	}
	k := p.it.Key()
	if len(k) != p.prefix+8 {
		return fmt.Errorf("%w: query: posting key %q", ledger.ErrCorrupt, k)
	}
	v, err := p.it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("query: read posting chunk: %w", err)
	}
	i := binary.BigEndian.Uint64(k[p.prefix:])
	if p.match != nil {
		return p.loadBucket(k, i, v)
	}
	p.chunk = append(p.chunk[:0], i)
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || d == 0 || i+d < i {
			return fmt.Errorf("%w: query: posting chunk %q", ledger.ErrCorrupt, k)
		}
		i += d
		v = v[n:]
		p.chunk = append(p.chunk, i)
	}
	p.valid = true
	return nil
}

// loadBucket decodes a bucket chunk, keeping the entries of p.match.
func (p *posting) loadBucket(k []byte, i uint64, v []byte) error {
	p.chunk = p.chunk[:0]
	for first := true; len(v) > 0; first = false {
		d, n := binary.Uvarint(v)
		if n <= 0 || (d == 0) != first || i+d < i {
			return fmt.Errorf("%w: query: bucket chunk %x", ledger.ErrCorrupt, k)
		}
		i += d
		v = v[n:]
		l, n := binary.Uvarint(v)
		if n <= 0 || l > uint64(len(v)-n) {
			return fmt.Errorf("%w: query: bucket chunk %x", ledger.ErrCorrupt, k)
		}
		if bytes.Equal(v[n:n+int(l)], p.match) {
			p.chunk = append(p.chunk, i)
		}
		v = v[n+int(l):]
	}
	p.valid = true
	return nil
}

// skipEmpty moves on (forward or back) past chunks with no entry.
func (p *posting) skipEmpty(forward bool) error {
	for p.valid && len(p.chunk) == 0 {
		var ok bool
		if forward {
			ok = p.it.Next()
		} else {
			ok = p.it.Prev()
		}
		if err := p.load(ok); err != nil {
			return err
		}
	}
	return nil
}

func (p *posting) seekKey(i uint64) []byte {
	p.key = binary.BigEndian.AppendUint64(p.key[:p.prefix], i)
	return p.key
}

func (p *posting) last() uint64 { return p.chunk[len(p.chunk)-1] }

// seekGE: the chunk holding the answer is the first whose last index is
// >= t. Streams move one way, so it is usually the current chunk or the
// next one; otherwise one seek finds it.
func (p *posting) seekGE(t uint64) (uint64, bool, error) {
	t = max(t, p.lo)
	if p.geEndSet && t >= p.geEnd {
		return 0, false, nil
	}
	if !p.valid || len(p.chunk) == 0 || p.last() < t {
		if err := p.chunkGE(t); err != nil || !p.valid {
			if err == nil {
				p.geEnd, p.geEndSet = t, true
			}
			return 0, false, err
		}
		p.at = 0
	}
	for p.at > 0 && p.chunk[p.at-1] >= t {
		p.at--
	}
	for p.chunk[p.at] < t {
		p.at++
	}
	i := p.chunk[p.at]
	return i, i < p.hi, nil
}

// chunkGE positions at the first non-empty chunk whose last index is
// >= t (valid is false when there is none).
func (p *posting) chunkGE(t uint64) error {
	if p.valid {
		if err := p.load(p.it.Next()); err != nil {
			return err
		}
		if err := p.skipEmpty(true); err != nil || !p.valid || p.last() >= t {
			return err
		}
	}
	var ok bool
	if t == ^uint64(0) {
		ok = p.it.Last()
	} else {
		ok = p.it.SeekLT(p.seekKey(t + 1)) // the last chunk starting at or before t
	}
	if !ok {
		if err := p.it.Error(); err != nil {
			return err
		}
		ok = p.it.First() // every chunk starts after t
	} else {
		if err := p.load(true); err != nil || (len(p.chunk) > 0 && p.last() >= t) {
			return err
		}
		ok = p.it.Next() // later chunks start after t
	}
	if err := p.load(ok); err != nil {
		return err
	}
	return p.skipEmpty(true)
}

// seekLE mirrors seekGE.
func (p *posting) seekLE(t uint64) (uint64, bool, error) {
	if t >= p.hi {
		if p.hi == 0 {
			return 0, false, nil
		}
		t = p.hi - 1
	}
	if p.leEndSet && t <= p.leEnd {
		return 0, false, nil
	}
	if !p.valid || len(p.chunk) == 0 || p.chunk[0] > t {
		if err := p.chunkLE(t); err != nil || !p.valid {
			if err == nil {
				p.leEnd, p.leEndSet = t, true
			}
			return 0, false, err
		}
		p.at = len(p.chunk) - 1
	}
	for p.at < len(p.chunk)-1 && p.chunk[p.at+1] <= t {
		p.at++
	}
	for p.chunk[p.at] > t {
		p.at--
	}
	i := p.chunk[p.at]
	return i, i >= p.lo, nil
}

// chunkLE positions at the last non-empty chunk whose first index is
// <= t.
func (p *posting) chunkLE(t uint64) error {
	if p.valid {
		if err := p.load(p.it.Prev()); err != nil {
			return err
		}
		if err := p.skipEmpty(false); err != nil || !p.valid || p.chunk[0] <= t {
			return err
		}
	}
	if err := p.load(p.it.SeekLT(p.seekKey(t + 1))); err != nil || !p.valid {
		return err
	}
	if len(p.chunk) > 0 && p.chunk[0] <= t {
		return nil
	}
	// Empty, or its first match is past t: earlier chunks end before
	// this one starts.
	if err := p.load(p.it.Prev()); err != nil {
		return err
	}
	return p.skipEmpty(false)
}

func (p *posting) close() { p.it.Close() }

// zones is the set of indices in blocks whose event-timestamp zone
// meets the plan's timestamp range.
type zones struct {
	it       *pebble.Iterator
	from, to tsVal // from <= ts < to
	lo, hi   uint64
	// The block the iterator is at, and whether its zone meets the range.
	block uint64
	meets bool
	valid bool
}

func openZones(ctx context.Context, db *pebble.DB, p *plan, lo, hi uint64) (*zones, error) {
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: zoneKey(lo >> zoneShift),
		UpperBound: zoneKey(((hi - 1) >> zoneShift) + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("query: open zone map: %w", err)
	}
	return &zones{it: it, from: p.tsFrom, to: p.tsTo, lo: lo, hi: hi}, nil
}

func (z *zones) load(ok bool) error {
	z.valid = false
	if !ok {
		return z.it.Error()
	}
	k := z.it.Key()
	v, err := z.it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("query: read zone: %w", err)
	}
	zn, good := decodeZone(v)
	if len(k) != 12 || !good {
		return fmt.Errorf("%w: query: zone %x", ledger.ErrCorrupt, k)
	}
	z.block = binary.BigEndian.Uint64(k[4:])
	z.meets = !zn.max.less(z.from) && zn.min.less(z.to)
	z.valid = true
	return nil
}

// seekGE: the first meeting block at or after t's; streams move one
// way, so a meeting block the iterator is already at, beyond t's, is
// still the answer.
func (z *zones) seekGE(t uint64) (uint64, bool, error) {
	t = max(t, z.lo)
	b := t >> zoneShift
	if !z.valid || z.block < b {
		if err := z.load(z.it.SeekGE(zoneKey(b))); err != nil {
			return 0, false, err
		}
	}
	for z.valid && !z.meets {
		if err := z.load(z.it.Next()); err != nil {
			return 0, false, err
		}
	}
	if !z.valid {
		return 0, false, nil
	}
	i := max(t, z.block<<zoneShift)
	return i, i < z.hi, nil
}

func (z *zones) seekLE(t uint64) (uint64, bool, error) {
	if t >= z.hi {
		if z.hi == 0 {
			return 0, false, nil
		}
		t = z.hi - 1
	}
	b := t >> zoneShift
	if !z.valid || z.block > b {
		if err := z.load(z.it.SeekLT(zoneKey(b + 1))); err != nil {
			return 0, false, err
		}
	}
	for z.valid && !z.meets {
		if err := z.load(z.it.Prev()); err != nil {
			return 0, false, err
		}
	}
	if !z.valid {
		return 0, false, nil
	}
	i := min(t, z.block<<zoneShift|(1<<zoneShift-1))
	return i, i >= z.lo, nil
}

func (z *zones) close() { z.it.Close() }

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
