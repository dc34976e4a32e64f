package query

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// Index keeps the query tables of a Store: posting lists per indexed
// field, the event-timestamp table and the receive-time marks. It writes
// them from a ledger.ApplyHook, in the same Pebble batch as the entries,
// so the tables are never behind or ahead of the log, on any node, and a
// Raft snapshot carries them.
//
// Use: NewIndex, put Hook() in ledger.StoreOptions.Hooks, open the
// store, Attach it before anything applies (before the ledger or the
// Raft node start), then NewEngine for reads.
type Index struct {
	mu    sync.Mutex // the hook runs under the store's apply lock; this guards the fields against Attach
	store *ledger.Store
	valid bool   // next, markMs and lag describe the entries below next
	next  uint64 // index the hook expects next
	// markMs is the largest receive time seen, in whole milliseconds
	// (minInt64 before the first entry); lag is the largest amount, in
	// milliseconds, by which an entry's receive time fell behind markMs.
	markMs int64
	lag    int64
	buf    []byte
}

// NewIndex returns an Index to attach to a store.
func NewIndex() *Index { return &Index{} }

// Hook returns the apply hook to put in ledger.StoreOptions.Hooks.
func (x *Index) Hook() ledger.ApplyHook { return x.apply }

// Attach binds the index to its store and builds the query tables if the
// store has entries that were written without them (a data directory
// from before indexing, or from an older index format). It must run
// before the first Apply; the rebuild reads every entry once.
func (x *Index) Attach(ctx context.Context, st *ledger.Store) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.store, x.valid = st, false
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
// entries. The writes bypass Apply: they are derived only from the
// entries, so every node that rebuilds gets the same bytes.
func (x *Index) rebuildLocked(ctx context.Context) error {
	db := x.store.DB()
	if err := db.DeleteRange([]byte("q/"), []byte("q0"), pebble.Sync); err != nil {
		return fmt.Errorf("query: clear index: %w", err)
	}
	x.valid, x.next, x.markMs, x.lag = true, 0, minInt64, 0
	b := db.NewBatch()
	w := batchWriter{b}
	flush := func() error {
		err := b.Commit(pebble.NoSync)
		b.Close()
		b = db.NewBatch()
		w = batchWriter{b}
		return err
	}
	err := x.store.ScanLeaves(ctx, 0, func(index uint64, leaf []byte) error {
		x.applyLocked(w, index, leaf)
		if b.Len() > 4<<20 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = b.Set(keyVersion, []byte(indexFormat), nil)
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	x.valid = false // reload from what is stored at the next apply
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
	if !x.valid || index != x.next {
		if err := x.reloadLocked(index); err != nil {
			return err
		}
	}
	return x.applyLocked(w, index, leaf)
}

// reloadLocked restores the receive-time state from the tables, which
// hold exactly the entries below index (the hook sees entries in order,
// and every earlier batch is in Pebble before the next is prepared).
// In memory the state is only a cache of what is stored: it is a
// function of the log prefix, so it is the same on every node.
func (x *Index) reloadLocked(index uint64) error {
	db := x.store.DB()
	x.markMs, x.lag = minInt64, 0
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
	x.valid, x.next = true, index
	return nil
}

// applyLocked writes the table rows of one entry. A leaf it cannot read
// is left out of the indexes (on every node alike) rather than failing
// the batch: the Store accepted it, and the log must go on.
func (x *Index) applyLocked(w ledger.KVWriter, index uint64, leaf []byte) error {
	x.next = index + 1
	var f fields
	if parseFields(leaf, &f) != nil {
		return nil
	}
	for fld := range numFields {
		v := f.vals[fld]
		if len(v) == 0 {
			continue
		}
		x.buf = appendPostingPrefix(x.buf[:0], fld, v)
		x.buf = binary.BigEndian.AppendUint64(x.buf, index)
		if err := w.Set(x.buf, nil); err != nil {
			return err
		}
	}
	if len(f.timestamp) > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(f.timestamp)); err == nil {
			x.buf = appendTimestampKey(x.buf[:0], t.Unix(), int32(t.Nanosecond()), index)
			if err := w.Set(x.buf, nil); err != nil {
				return err
			}
		}
	}
	// Receive-time marks: a mark (ms, index) each time the running
	// maximum receive time enters a new millisecond, and the largest lag
	// behind that maximum. See marks.go for how queries use them.
	ms := floorDiv(f.receivedAt, int64(time.Millisecond))
	switch {
	case ms > x.markMs:
		x.markMs = ms
		if err := w.Set(markKey(ms, index), nil); err != nil {
			return err
		}
	case x.markMs-ms > x.lag:
		x.lag = x.markMs - ms
		if err := w.Set(keyLag, binary.BigEndian.AppendUint64(nil, uint64(x.lag))); err != nil {
			return err
		}
	}
	return nil
}
