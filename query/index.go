package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// Index keeps the query tables of a Store (see keys.go): posting chunks
// per indexed field, the receive-time marks and the event-timestamp zone
// map. It writes them from the Store's apply hooks, in the same Pebble
// batch as the entries, so the tables are never behind or ahead of the
// log, on any node, and a Raft snapshot carries them.
//
// The entry hook only gathers an entry's values; the batch hook groups
// them per value and writes the batch's rows in key order, because an
// LSM write costs per key and Pebble inserts ascending keys into its
// memtable faster than scattered ones (see BenchmarkApplyBatch).
//
// Use: NewIndex, Install it in the ledger.StoreOptions, open the store,
// Attach it before anything applies (before the ledger or the Raft node
// start), then NewEngine for reads.
type Index struct {
	mu    sync.Mutex // the hooks run under the store's apply lock; this guards against Attach
	store *ledger.Store
	valid bool   // next and the state below describe the entries below next
	next  uint64 // index the hook expects next
	// markMs is the largest receive time seen, in whole milliseconds
	// (minInt64 before the first entry); lag is the largest amount, in
	// milliseconds, by which an entry's receive time fell behind markMs.
	markMs int64
	lag    int64
	// zone is the timestamp range of block zoneBlock so far (hasZone:
	// some entry of it has a timestamp).
	zoneBlock uint64
	zone      zone
	hasZone   bool

	// Gathered for the batch being applied, written by flush.
	vals     [numFields]valueRows
	marks    []uint64 // mark keys' (ms, index) pairs, flattened
	zones    []uint64 // blocks whose zone changed
	zoneVals []zone   // their zones
	lagDirty bool
	batch    ledger.KVWriter // the batch the rows belong to
	pending  bool
	key      []byte
	val      []byte
	order    []int  // flushBuckets scratch
	bkts     []byte // flushBuckets scratch
}

// valueRows are one field's values in a batch, in an arena.
type valueRows struct {
	arena []byte
	rows  []valueRow
}

type valueRow struct {
	off, n int
	index  uint64
}

// NewIndex returns an Index to install in a store's options.
func NewIndex() *Index { return &Index{} }

// Install adds the index's hooks to o.
func (x *Index) Install(o *ledger.StoreOptions) {
	o.Hooks = append(o.Hooks, x.apply)
	o.BatchHooks = append(o.BatchHooks, x.flush)
}

// Attach binds the index to its store and builds the query tables if the
// store has entries that were written without them (a data directory
// from before indexing, or from an older index format). It must run
// before the first Apply; the rebuild reads every entry once.
func (x *Index) Attach(ctx context.Context, st *ledger.Store) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.store, x.valid = st, false
	x.reset()
	v, err := st.Get(keyVersion)
	switch {
	case err == nil && string(v) == indexFormat:
		return nil
	case err != nil && !errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("query: read index version: %w", err)
	}
	return x.rebuildLocked(ctx)
}

// rebuildLocked drops the query tables and writes them again from the
// entries. The writes bypass Apply: they are derived from the entries
// only, so every node that rebuilds answers queries the same way (the
// chunking of posting lists follows the rebuild's batches, not the
// original ones, so the bytes may differ from a hook-built table).
func (x *Index) rebuildLocked(ctx context.Context) error {
	db := x.store.DB()
	if err := db.DeleteRange([]byte("q/"), []byte("q0"), pebble.Sync); err != nil {
		return fmt.Errorf("query: clear index: %w", err)
	}
	x.valid, x.next, x.markMs, x.lag, x.hasZone, x.zoneBlock = true, 0, minInt64, 0, false, 0
	b := db.NewBatch()
	n := 0
	flush := func() error {
		if err := x.flushLocked(batchWriter{b}); err != nil {
			return err
		}
		err := b.Commit(pebble.NoSync)
		b.Close()
		b = db.NewBatch()
		return err
	}
	err := x.store.ScanLeaves(ctx, 0, func(index uint64, leaf []byte) error {
		x.applyLocked(index, leaf)
		if n++; n%10000 == 0 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = x.flushLocked(batchWriter{b})
	}
	if err == nil {
		err = b.Set(keyVersion, []byte(indexFormat), nil)
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	x.valid = false // reload from what is stored at the next apply
	x.reset()
	if err != nil {
		return fmt.Errorf("query: build index: %w", err)
	}
	return nil
}

type batchWriter struct{ b *pebble.Batch }

func (w batchWriter) Set(key, value []byte) error { return w.b.Set(key, value, nil) }
func (w batchWriter) Delete(key []byte) error     { return w.b.Delete(key, nil) }

func (x *Index) apply(w ledger.KVWriter, index uint64, leaf []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.store == nil {
		return errors.New("query: index not attached to its store")
	}
	if x.pending && w != x.batch {
		// The rows of an earlier batch were never flushed: either the
		// batch hook is not installed or that batch failed (and the
		// store refuses every later one anyway).
		x.reset()
		x.valid = false
		return errors.New("query: index rows of an earlier batch were not written (is the batch hook installed?)")
	}
	x.batch, x.pending = w, true
	if !x.valid || index != x.next {
		if err := x.reloadLocked(index); err != nil {
			return err
		}
	}
	x.applyLocked(index, leaf)
	return nil
}

// reloadLocked restores the index's running state from the tables,
// which hold exactly the entries below index (the hook sees entries in
// order, and every earlier batch is in Pebble before the next is
// prepared). In memory that state is only a cache of what is stored: it
// is a function of the log prefix, so it is the same on every node.
func (x *Index) reloadLocked(index uint64) error {
	db := x.store.DB()
	x.markMs, x.lag, x.hasZone = minInt64, 0, false
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: tablePrefix(tagMarks), UpperBound: prefixEnd(tablePrefix(tagMarks))})
	if err != nil {
		return fmt.Errorf("query: reload marks: %w", err)
	}
	if it.Last() {
		ms, at, ok := decodeMark(it.Key())
		if !ok || at >= index {
			it.Close()
			return fmt.Errorf("%w: query: receive-time mark at %d is not below %d", ledger.ErrCorrupt, at, index)
		}
		x.markMs = ms
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("query: reload marks: %w", err)
	}
	v, err := x.store.Get(keyLag)
	switch {
	case err == nil && len(v) == 8:
		x.lag = int64(binary.BigEndian.Uint64(v))
	case err == nil:
		return fmt.Errorf("%w: query: lag value", ledger.ErrCorrupt)
	case !errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("query: reload lag: %w", err)
	}
	x.zoneBlock = index >> zoneShift
	v, err = x.store.Get(zoneKey(x.zoneBlock))
	switch {
	case err == nil:
		z, ok := decodeZone(v)
		if !ok {
			return fmt.Errorf("%w: query: zone %d", ledger.ErrCorrupt, x.zoneBlock)
		}
		x.zone, x.hasZone = z, true
	case !errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("query: reload zone: %w", err)
	}
	x.valid, x.next = true, index
	return nil
}

// applyLocked gathers the rows of one entry. A leaf it cannot read is
// left out of the indexes (on every node alike) rather than failing the
// batch: the Store accepted it, and the log must go on.
func (x *Index) applyLocked(index uint64, leaf []byte) {
	x.next = index + 1
	var f fields
	if parseFields(leaf, &f) != nil {
		return
	}
	for fld := range numFields {
		if v := f.vals[fld]; len(v) > 0 {
			vr := &x.vals[fld]
			vr.rows = append(vr.rows, valueRow{len(vr.arena), len(v), index})
			vr.arena = append(vr.arena, v...)
		}
	}
	if len(f.timestamp) > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(f.timestamp)); err == nil {
			x.noteTimestamp(index, tsVal{t.Unix(), int32(t.Nanosecond())})
		}
	}
	// Receive-time marks: a mark (ms, index) each time the running
	// maximum receive time enters a new millisecond, and the largest lag
	// behind that maximum. See marks.go for how queries use them.
	ms := floorDiv(f.receivedAt, int64(time.Millisecond))
	switch {
	case ms > x.markMs:
		x.markMs = ms
		x.marks = append(x.marks, uint64(ms), index)
	case x.markMs-ms > x.lag:
		x.lag, x.lagDirty = x.markMs-ms, true
	}
}

// noteTimestamp widens the zone of index's block to ts.
func (x *Index) noteTimestamp(index uint64, ts tsVal) {
	if b := index >> zoneShift; b != x.zoneBlock {
		x.zoneBlock, x.hasZone = b, false
	}
	switch {
	case !x.hasZone:
		x.zone, x.hasZone = zone{ts, ts}, true
	case ts.less(x.zone.min):
		x.zone.min = ts
	case x.zone.max.less(ts):
		x.zone.max = ts
	default:
		return
	}
	// Blocks ascend within a batch, so only the last one can still change.
	if n := len(x.zones); n == 0 || x.zones[n-1] != x.zoneBlock {
		x.zones = append(x.zones, x.zoneBlock)
		x.zoneVals = append(x.zoneVals, zone{})
	}
	x.zoneVals[len(x.zoneVals)-1] = x.zone
}

func (x *Index) flush(w ledger.KVWriter) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.flushLocked(w)
}

// flushLocked writes the gathered rows in key order: the posting tables
// in tag order, each grouped by value, then marks, zones and the lag.
func (x *Index) flushLocked(w ledger.KVWriter) error {
	defer x.reset()
	for _, fld := range fieldsByTag {
		if err := x.flushField(w, fld); err != nil {
			return err
		}
	}
	for i := 0; i < len(x.marks); i += 2 {
		x.key = appendMarkKey(x.key[:0], int64(x.marks[i]), x.marks[i+1])
		if err := w.Set(x.key, nil); err != nil {
			return err
		}
	}
	for i, b := range x.zones {
		if err := w.Set(zoneKey(b), encodeZone(x.zoneVals[i])); err != nil {
			return err
		}
	}
	if x.lagDirty {
		return w.Set(keyLag, binary.BigEndian.AppendUint64(nil, uint64(x.lag)))
	}
	return nil
}

func (x *Index) flushField(w ledger.KVWriter, fld Field) error {
	if bucketed(fld) {
		return x.flushBuckets(w, fld)
	}
	vr := &x.vals[fld]
	val := func(r valueRow) []byte { return vr.arena[r.off : r.off+r.n] }
	slices.SortFunc(vr.rows, func(a, b valueRow) int {
		if c := bytes.Compare(val(a), val(b)); c != 0 {
			return c
		}
		if a.index < b.index {
			return -1
		}
		return 1
	})
	for i := 0; i < len(vr.rows); {
		v := val(vr.rows[i])
		x.key = appendPostingPrefix(x.key[:0], fld, v)
		x.key = binary.BigEndian.AppendUint64(x.key, vr.rows[i].index)
		x.val = x.val[:0]
		prev := vr.rows[i].index
		j := i + 1
		for ; j < len(vr.rows) && j-i < maxChunk && bytes.Equal(val(vr.rows[j]), v); j++ {
			x.val = binary.AppendUvarint(x.val, vr.rows[j].index-prev)
			prev = vr.rows[j].index
		}
		if err := w.Set(x.key, x.val); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// flushBuckets writes a bucketed field's chunks: the rows grouped by
// bucket, in index order within each.
func (x *Index) flushBuckets(w ledger.KVWriter, fld Field) error {
	vr := &x.vals[fld]
	if len(vr.rows) == 0 {
		return nil
	}
	var counts [1<<bucketBits + 1]int
	x.order = slices.Grow(x.order[:0], len(vr.rows))[:len(vr.rows)]
	x.bkts = slices.Grow(x.bkts[:0], len(vr.rows))[:len(vr.rows)]
	for i, r := range vr.rows {
		b := bucketOf(vr.arena[r.off : r.off+r.n])
		x.bkts[i] = b
		counts[b+1]++
	}
	for b := 1; b < len(counts); b++ {
		counts[b] += counts[b-1]
	}
	for i, b := range x.bkts { // stable: index order within a bucket
		x.order[counts[b]] = i
		counts[b]++
	}
	for i := 0; i < len(x.order); {
		b := x.bkts[x.order[i]]
		first := vr.rows[x.order[i]].index
		x.key = append(x.key[:0], 'q', '/', fieldTags[fld], '/', b)
		x.key = binary.BigEndian.AppendUint64(x.key, first)
		x.val = x.val[:0]
		prev := first
		j := i
		for ; j < len(x.order) && j-i < maxChunk && x.bkts[x.order[j]] == b; j++ {
			r := vr.rows[x.order[j]]
			x.val = binary.AppendUvarint(x.val, r.index-prev)
			x.val = binary.AppendUvarint(x.val, uint64(r.n))
			x.val = append(x.val, vr.arena[r.off:r.off+r.n]...)
			prev = r.index
		}
		if err := w.Set(x.key, x.val); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func (x *Index) reset() {
	for i := range x.vals {
		vr := &x.vals[i]
		vr.arena, vr.rows = vr.arena[:0], vr.rows[:0]
		if cap(vr.arena) > 16<<20 {
			vr.arena, vr.rows = nil, nil // do not pin a rebuild's buffers
		}
	}
	x.marks, x.zones, x.zoneVals = x.marks[:0], x.zones[:0], x.zoneVals[:0]
	x.lagDirty, x.batch, x.pending = false, nil, false
}

// fieldsByTag lists the fields in the order of their tables' keys.
var fieldsByTag = func() []Field {
	fs := make([]Field, numFields)
	for i := range fs {
		fs[i] = Field(i)
	}
	slices.SortFunc(fs, func(a, b Field) int { return int(fieldTags[a]) - int(fieldTags[b]) })
	return fs
}()
