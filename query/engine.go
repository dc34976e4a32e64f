package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/ledgerd/ledger"
)

// Filter selects entries. Every field that is set must match exactly;
// the filters combine with AND. Empty strings and zero times are
// unbounded.
type Filter struct {
	ActorID     string
	ActorType   string
	ActorIP     string
	ActionType  string
	Resource    string
	ResourceID  string
	Result      string
	Application string
	Environment string
	RequestID   string

	// Server receive time: ReceivedFrom <= t < ReceivedTo.
	ReceivedFrom, ReceivedTo time.Time
	// Event timestamp (the client's): TimestampFrom <= t < TimestampTo.
	// Events without a timestamp never match a timestamp bound.
	TimestampFrom, TimestampTo time.Time
}

func (f *Filter) values() [numFields]string {
	return [numFields]string{
		FieldActorID:     f.ActorID,
		FieldActorType:   f.ActorType,
		FieldActorIP:     f.ActorIP,
		FieldActionType:  f.ActionType,
		FieldResource:    f.Resource,
		FieldResourceID:  f.ResourceID,
		FieldResult:      f.Result,
		FieldApplication: f.Application,
		FieldEnvironment: f.Environment,
		FieldRequestID:   f.RequestID,
	}
}

// Value returns the filter's value for field f ("" when unset).
func (f *Filter) Value(fld Field) string {
	if fld >= numFields {
		return ""
	}
	return f.values()[fld]
}

// hash identifies the filter, so a cursor only continues its own query.
func (f *Filter) hash() uint64 {
	h := sha256.New()
	for _, v := range f.values() {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	for _, t := range []time.Time{f.ReceivedFrom, f.ReceivedTo, f.TimestampFrom, f.TimestampTo} {
		b, _ := t.UTC().MarshalBinary()
		h.Write([]byte{byte(len(b))})
		h.Write(b)
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Request is one page of a query.
type Request struct {
	Filter Filter
	// Descending returns the newest entries first.
	Descending bool
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor continues from a previous page's NextCursor; the filter and
	// order must be the same.
	Cursor string
	// SkipTotal leaves Page.Total unset (saves a counting pass).
	SkipTotal bool
}

// Row is one matching entry.
type Row struct {
	Index uint64
	Leaf  []byte
}

// Page is a query result.
type Page struct {
	Rows []Row
	// NextCursor continues the query after the last row; empty when
	// HasMore is false.
	NextCursor string
	HasMore    bool
	// Total is the number of matching entries (over all pages, at
	// TreeSize). Exact unless TotalEstimated: past countBudget candidates
	// the count is extrapolated from the part counted.
	Total          uint64
	TotalEstimated bool
	// Page numbers pages from 1, following cursors.
	Page int
	// TreeSize is the committed log size the page was read at: every
	// row's index is below it.
	TreeSize uint64
}

// countBudget bounds the candidates the total count examines.
const countBudget = 10000

// EngineOptions configure an Engine.
type EngineOptions struct {
	Store *ledger.Store
	// CursorKey is key material shared by every node of the cluster (the
	// HMAC signing key); the cursor key is derived from it.
	CursorKey []byte
	// Registerer receives the query metrics; nil registers none.
	Registerer prometheus.Registerer
	// StoredForms, when set, returns the other forms in which value may
	// be stored in field (the deterministic ciphertexts of a searchable
	// encrypted field, one per data key): entries with any of them, or
	// with the plain value, match. filter is the whole query (the data
	// subject a form depends on may be another of its fields).
	StoredForms func(field Field, value string, filter *Filter) ([]string, error)
}

// Engine answers queries from a Store's query tables. It is safe for
// concurrent use and holds no goroutines.
type Engine struct {
	store     *ledger.Store
	cursorKey []byte
	forms     func(Field, string, *Filter) ([]string, error)
	m         *metrics
}

// NewEngine returns an engine over o.Store, whose Index must be attached.
func NewEngine(o EngineOptions) (*Engine, error) {
	if o.Store == nil || len(o.CursorKey) == 0 {
		return nil, errors.New("query: EngineOptions needs Store and CursorKey")
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Engine{store: o.Store, cursorKey: deriveCursorKey(o.CursorKey), forms: o.StoredForms, m: m}, nil
}

// Close unregisters the engine's metrics.
func (e *Engine) Close() { e.m.unregister() }

// Query returns one page of entries matching req.
func (e *Engine) Query(ctx context.Context, req Request) (*Page, error) {
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return nil, &ledger.FieldError{Field: "limit", Reason: fmt.Sprintf("must be between 1 and %d", MaxLimit)}
	}
	x, err := e.prepare(ctx, &req)
	if err != nil {
		return nil, err
	}
	defer x.finish(e.m, "query")
	page := &Page{TreeSize: x.p.size, Page: 1}
	if x.cur != nil {
		page.Page = int(x.cur.page)
	}
	var lastPos []byte
	err = x.run(ctx, func(r Row, pos []byte) (bool, error) {
		if len(page.Rows) == limit {
			page.HasMore = true
			return false, nil
		}
		page.Rows = append(page.Rows, Row{Index: r.Index, Leaf: bytes.Clone(r.Leaf)})
		lastPos = append(lastPos[:0], pos...)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if page.HasMore {
		page.NextCursor = e.sealCursor(cursor{desc: req.Descending,
			filterHash: x.fh, page: uint32(page.Page + 1), pos: lastPos})
	}
	switch {
	case req.SkipTotal:
	case x.cur == nil && !page.HasMore:
		page.Total = uint64(len(page.Rows)) // the first page holds every match
	default:
		if page.Total, page.TotalEstimated, err = x.count(ctx); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Stream calls fn for every entry matching req (from req.Cursor when
// set; req.Limit rows at most when positive), in order, without holding
// them in memory. Row.Leaf is valid only during the call. It stops when
// fn returns an error or ctx is done. The returned cursor continues
// after the last row fn accepted.
func (e *Engine) Stream(ctx context.Context, req Request, fn func(Row) error) (string, error) {
	if req.Limit < 0 {
		return "", &ledger.FieldError{Field: "limit", Reason: "must not be negative"}
	}
	x, err := e.prepare(ctx, &req)
	if err != nil {
		return "", err
	}
	defer x.finish(e.m, "stream")
	n := 0
	var lastPos []byte
	err = x.run(ctx, func(r Row, pos []byte) (bool, error) {
		if req.Limit > 0 && n == req.Limit {
			return false, nil
		}
		if err := fn(r); err != nil {
			return false, err
		}
		n++
		lastPos = append(lastPos[:0], pos...)
		return true, nil
	})
	if lastPos == nil {
		return req.Cursor, err
	}
	pg := uint32(1)
	if x.cur != nil {
		pg = x.cur.page
	}
	return e.sealCursor(cursor{desc: req.Descending, filterHash: x.fh, page: pg + 1, pos: lastPos}), err
}

// CursorAfter returns a cursor that continues the query of f, in the
// given order, after the entry at index last (Export hands one out with
// each chunk it streams).
func (e *Engine) CursorAfter(f *Filter, desc bool, last uint64) string {
	return e.sealCursor(cursor{desc: desc, filterHash: f.hash(), page: 1, pos: binary.BigEndian.AppendUint64(nil, last)})
}

// execution is one prepared query.
type execution struct {
	db      *pebble.DB
	p       *plan
	cur     *cursor
	fh      uint64
	start   time.Time
	scanned int64
}

func (e *Engine) prepare(ctx context.Context, req *Request) (*execution, error) {
	x := &execution{db: e.store.DB(), fh: req.Filter.hash(), start: time.Now()}
	if req.Cursor != "" {
		c, err := e.openCursor(req.Cursor)
		if err != nil {
			return nil, err
		}
		if c.filterHash != x.fh || c.desc != req.Descending {
			return nil, &ledger.FieldError{Field: "cursor", Reason: "belongs to a query with other filters or order"}
		}
		x.cur = &c
	}
	if x.db == nil {
		return nil, ledger.ErrClosed
	}
	size := e.store.State().Size
	p, err := newPlan(x.db, &req.Filter, req.Descending, size, e.forms)
	if err != nil {
		return nil, err
	}
	x.p = p
	return x, ctx.Err()
}

func (x *execution) finish(m *metrics, op string) {
	m.observe(op, x.p.driver, time.Since(x.start), x.scanned)
}

// Drivers: what produces the candidate indices (for metrics).
const (
	driverPostings = iota // posting lists (and zones), joined
	driverZones           // the event-timestamp zone map alone
	driverScan            // every index of the receive-time span
)

var driverNames = [...]string{"postings", "zones", "scan"}

// term is one field filter: entries with any of its alternatives match.
type term []alt

// alt is one stored value: its chunks' key prefix, and for a bucketed
// field the value the bucket's entries must have.
type alt struct {
	prefix []byte
	match  []byte
}

// plan is a filter resolved against one committed size.
type plan struct {
	size   uint64
	desc   bool
	driver int
	terms  []term // one per field filter
	sp     span

	hasRecv                bool
	recvFrom, recvTo       int64
	hasTS                  bool
	tsFrom, tsTo           tsVal
	hasTSFrom, hasTSTo     bool
	hasRecvFrom, hasRecvTo bool
}

func tsOf(t time.Time) tsVal { return tsVal{t.Unix(), int32(t.Nanosecond())} }

// nanos is t in Unix nanoseconds, clamped to the int64 range.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, minInt64)):
		return minInt64
	case t.After(time.Unix(0, maxInt64)):
		return maxInt64
	}
	return t.UnixNano()
}

func newPlan(db *pebble.DB, f *Filter, desc bool, size uint64, forms func(Field, string, *Filter) ([]string, error)) (*plan, error) {
	p := &plan{size: size, desc: desc}
	for i, v := range f.values() {
		if v == "" {
			continue
		}
		fld := Field(i)
		vals := []string{v}
		if forms != nil {
			more, err := forms(fld, v, f)
			if err != nil {
				return nil, err
			}
			vals = append(vals, more...)
		}
		// Format-2 leaves hold encrypted values in binary, and the index
		// keeps them so (no conversion per appended entry).
		for _, v := range vals {
			if b, ok := ledger.SealedBinary(v); ok {
				vals = append(vals, b)
			}
		}
		var t term
		for _, v := range vals {
			a := alt{prefix: postingPrefix(fld, v)}
			if bucketed(fld) {
				a.match = []byte(v)
			}
			t = append(t, a)
		}
		p.terms = append(p.terms, t)
	}
	p.hasRecvFrom, p.hasRecvTo = !f.ReceivedFrom.IsZero(), !f.ReceivedTo.IsZero()
	p.hasRecv = p.hasRecvFrom || p.hasRecvTo
	p.recvFrom, p.recvTo = minInt64, maxInt64
	if p.hasRecvFrom {
		p.recvFrom = nanos(f.ReceivedFrom)
	}
	if p.hasRecvTo {
		p.recvTo = nanos(f.ReceivedTo)
	}
	p.hasTSFrom, p.hasTSTo = !f.TimestampFrom.IsZero(), !f.TimestampTo.IsZero()
	p.hasTS = p.hasTSFrom || p.hasTSTo
	p.tsFrom, p.tsTo = tsVal{math.MinInt64, 0}, tsVal{math.MaxInt64, 0}
	if p.hasTSFrom {
		p.tsFrom = tsOf(f.TimestampFrom)
	}
	if p.hasTSTo {
		p.tsTo = tsOf(f.TimestampTo)
	}
	if p.hasRecvFrom && p.hasRecvTo && p.recvFrom >= p.recvTo {
		return nil, &ledger.FieldError{Field: "endTime", Reason: "must be after the start time"}
	}
	if p.hasTSFrom && p.hasTSTo && !p.tsFrom.less(p.tsTo) {
		return nil, &ledger.FieldError{Field: "endTime", Reason: "must be after the start time"}
	}
	sp, err := timeSpan(db, size, p.recvFrom, p.recvTo, p.hasRecvFrom, p.hasRecvTo)
	if err != nil {
		return nil, err
	}
	p.sp = sp
	switch {
	case len(p.terms) > 0:
		p.driver = driverPostings
	case p.hasTS:
		p.driver = driverZones
	default:
		p.driver = driverScan
	}
	return p, nil
}

// accept applies the checks the driver does not: exact receive time at
// the edges of the span, and the event timestamp in index order.
func (p *plan) accept(index uint64, leaf []byte) (bool, error) {
	if p.hasRecv && (index < p.sp.clo || index >= p.sp.chi) {
		var f fields
		if err := parseFields(leaf, &f); err != nil {
			return false, nil
		}
		if f.receivedAt < p.recvFrom || f.receivedAt >= p.recvTo {
			return false, nil
		}
	}
	if p.hasTS {
		ts, err := leafTimestamp(leaf)
		if err != nil || len(ts) == 0 {
			return false, nil
		}
		t, err := time.Parse(time.RFC3339Nano, string(ts))
		if err != nil {
			return false, nil
		}
		v := tsOf(t)
		if v.less(p.tsFrom) || !v.less(p.tsTo) {
			return false, nil
		}
	}
	return true, nil
}

// needsLeaf reports whether accept must see the leaf of index.
func (p *plan) needsLeaf(index uint64) bool {
	return (p.hasRecv && (index < p.sp.clo || index >= p.sp.chi)) || p.hasTS
}

// run feeds matching rows to emit, in order, resuming after the cursor,
// until emit returns false or the candidates run out.
func (x *execution) run(ctx context.Context, emit func(r Row, pos []byte) (bool, error)) error {
	var resume []byte
	if x.cur != nil {
		resume = x.cur.pos
	}
	s, err := x.p.open(ctx, x.db, resume, &x.scanned)
	if err != nil {
		return err
	}
	defer s.close()
	lf, err := openLeaves(ctx, x.db, x.p)
	if err != nil {
		return err
	}
	defer lf.close()
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		idx, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		leaf, err := lf.get(idx)
		x.scanned++
		if err != nil {
			return err
		}
		if ok, err := x.p.accept(idx, leaf); err != nil {
			return err
		} else if !ok {
			continue
		}
		if more, err := emit(Row{Index: idx, Leaf: leaf}, s.pos()); err != nil || !more {
			return err
		}
	}
}

// count returns the number of matches, exact within countBudget
// candidates, else extrapolated.
func (x *execution) count(ctx context.Context) (uint64, bool, error) {
	p := x.p
	if p.sp.lo >= p.sp.hi {
		return 0, false, nil
	}
	if p.driver == driverScan && !p.hasTS {
		// Everything inside [clo, chi) matches; only the edges are read.
		n := p.sp.chi - p.sp.clo
		edges := (p.sp.clo - p.sp.lo) + (p.sp.hi - p.sp.chi)
		if edges > countBudget {
			return n + edges/2, true, nil
		}
		lf, err := openLeaves(ctx, x.db, p)
		if err != nil {
			return 0, false, err
		}
		defer lf.close()
		for _, r := range [][2]uint64{{p.sp.lo, p.sp.clo}, {p.sp.chi, p.sp.hi}} {
			for i := r[0]; i < r[1]; i++ {
				leaf, err := lf.get(i)
				x.scanned++
				if err != nil {
					return 0, false, err
				}
				if ok, _ := p.accept(i, leaf); ok {
					n++
				}
			}
		}
		return n, false, nil
	}
	cp := *p
	cp.desc = false
	s, err := cp.open(ctx, x.db, nil, &x.scanned)
	if err != nil {
		return 0, false, err
	}
	defer s.close()
	var lf *leafReader
	defer func() {
		if lf != nil {
			lf.close()
		}
	}()
	var n uint64
	for seen := 0; ; seen++ {
		if seen%256 == 255 {
			if err := ctx.Err(); err != nil {
				return 0, false, err
			}
		}
		idx, ok, err := s.next()
		if err != nil {
			return 0, false, err
		}
		if !ok {
			return n, false, nil
		}
		if seen >= countBudget {
			return estimate(&cp, s, n), true, nil
		}
		if !cp.needsLeaf(idx) {
			n++
			continue
		}
		if lf == nil {
			if lf, err = openLeaves(ctx, x.db, &cp); err != nil {
				return 0, false, err
			}
		}
		leaf, err := lf.get(idx)
		x.scanned++
		if err != nil {
			return 0, false, err
		}
		if ok, _ := cp.accept(idx, leaf); ok {
			n++
		}
	}
}

// estimate extrapolates n matches over the part of the candidate range
// the stream has covered.
func estimate(p *plan, s *stream, n uint64) uint64 {
	span := p.sp.hi - p.sp.lo
	if span == 0 || s.last < p.sp.lo {
		return n
	}
	return uint64(float64(n) * float64(span) / float64(s.last-p.sp.lo+1))
}
