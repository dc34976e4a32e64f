package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/auditledger/ledgerd/merkle"
)

// maxTileLevels bounds the tile levels a tree can have: 8 levels of 8 tree
// levels each cover 2^64 leaves.
const maxTileLevels = 8

// batchBytesPerEntry is the least an entry is assumed to add to a Pebble
// batch besides its leaf and id: the entry and id keys with
// their record headers and index values. What the hooks add (query
// postings, longer with encrypted values) is learnt from the batches
// before (Store.extraPerEntry).
const batchBytesPerEntry = 128

// maxRetainedBatch is the largest batch buffer Pebble's batch pool keeps
// for reuse (Pebble's default, 1 MiB, is less than a batch of 1000
// encrypted events, ~1.1 MiB).
const maxRetainedBatch = 2 << 20

// TreeState is the committed state of the tree, as readers see it.
type TreeState struct {
	Size        uint64      // number of leaves
	Root        merkle.Hash // root hash at Size
	LastApplied uint64      // sequence number of the last applied batch
}

// Result is the outcome of applying one leaf.
type Result struct {
	Index     uint64      // index of the entry (the original one for a duplicate)
	ID        string      // event id
	LeafHash  merkle.Hash // leaf hash of the entry at Index
	Leaf      []byte      // leaf bytes of the entry at Index
	Duplicate bool        // the id existed; nothing was appended for this leaf
}

// KVWriter is the part of a Pebble batch an ApplyHook may use. Keys must
// lie in the hook's own reserved table (see keys.go).
type KVWriter interface {
	Set(key, value []byte) error
	Delete(key []byte) error
}

// ApplyHook is called inside Apply for every new (non-duplicate) entry,
// in index order, with the batch that commits it. It must be
// deterministic: same inputs, same writes, on every node.
type ApplyHook func(w KVWriter, index uint64, leaf []byte) error

// BatchHook is called inside Apply once per batch, after the ApplyHooks
// of its entries, with the same batch. A hook that gathers its rows can
// write them here in key order: Pebble inserts ascending keys into its
// memtable several times faster than scattered ones. Same determinism
// rule as ApplyHook.
type BatchHook func(w KVWriter) error

// StoreOptions configure a Store.
type StoreOptions struct {
	// NoSync commits without fsync. Only safe when another durable log
	// (Raft's) can replay what a crash loses, or in benchmarks that say so.
	NoSync bool
	// Hooks run inside Apply; see ApplyHook.
	Hooks []ApplyHook
	// BatchHooks run inside Apply after the Hooks; see BatchHook.
	BatchHooks []BatchHook
	// TileCacheSize is the number of full tiles whose inner nodes are kept
	// in memory for proofs. Default 2048 (about 32 MiB).
	TileCacheSize int
	// FS, when set, replaces the OS file system (tests use vfs.NewMem()).
	Pebble *pebble.Options

	hashGroupBits uint8 // tests: leaf-hash index groups of 1<<bits entries
}

// Store is the ledger state machine on Pebble: entries, the Merkle tree as
// tlog tiles, and the id and leaf-hash indexes. Apply is the only writer;
// it is deterministic, so the same sequence of batches gives the same
// bytes and roots on every node. Reads are safe concurrently with Apply
// and see only committed state.
type Store struct {
	db     *pebble.DB
	dir    string // data directory, on fs (Restore stages files there)
	fs     vfs.FS
	sync   *pebble.WriteOptions
	hooks  []ApplyHook
	bhooks []BatchHook
	tiles  *tileCache
	state  atomic.Pointer[TreeState]
	failed atomic.Pointer[error]

	applyMu sync.Mutex // serialises Apply; guards the fields below
	prep    TreeState  // state after the last batch handed to Pebble
	// extraPerEntry is what the last large batch held per entry besides
	// its leaf and id (keys, index values, query postings, tile rows).
	extraPerEntry int
	ids           *idFilter // every stored event id, to skip lookups of new ones
	hashes        hashIndex // the leaf-hash index's recent entries (hashindex.go)
	rng           *merkle.Range
	edge          [maxTileLevels][]merkle.Hash // right-edge partial tile rows

	kvWrites atomic.Uint64 // KV batches and restores made visible (KVWrites)

	queueMu sync.Mutex // guards queued; taken after applyMu, never before
	queued  []KV       // QueueKV's writes, for the next locally numbered batch

	pubMu     sync.Mutex // serialises publish
	changedMu sync.Mutex
	changed   chan struct{} // closed and replaced after every commit
}

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	po := opts.Pebble
	if po == nil {
		po = &pebble.Options{}
	}
	// Memtables: 32 MiB each, up to four queued for flush before writes
	// stall. The same 128 MiB ceiling as two of 64 MiB, but flushed in
	// smaller steps, so a stall (and peak RSS) comes later and is shorter.
	if po.MemTableSize == 0 {
		po.MemTableSize = 32 << 20
	}
	if po.MemTableStopWritesThreshold == 0 {
		po.MemTableStopWritesThreshold = 4
	}
	// The leaf-hash and query tables take random keys, so every L0 file
	// overlaps all of Lbase and L0 grows under sustained load. Pebble's
	// defaults (stop at 12 sublevels, one compaction at a time) stalled
	// writes for seconds at 10M events; allow deeper L0 and a second
	// compaction when debt builds up, and a larger Lbase so fewer levels
	// are rewritten.
	if po.L0StopWritesThreshold == 0 {
		po.L0StopWritesThreshold = 64
	}
	if po.LBaseMaxBytes == 0 {
		po.LBaseMaxBytes = 256 << 20
	}
	if po.CompactionConcurrencyRange == nil {
		po.CompactionConcurrencyRange = func() (int, int) { return 1, 2 }
	}
	if po.Cache == nil {
		// Pebble's 8 MiB default block cache made index reads ~3× slower
		// than 64 MiB (query benchmarks); the DB holds its own reference.
		c := pebble.NewCache(64 << 20)
		defer c.Unref()
		po.Cache = c
	}
	if po.FormatMajorVersion == 0 {
		po.FormatMajorVersion = pebble.FormatNewest
	}
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Leaves (and tile rows) go to blob files when memtables flush, so
	// compactions move small keys and references instead of rewriting
	// every leaf at each level: the random leaf-hash and query keys
	// otherwise drag the leaves through every L0→Lbase compaction.
	// StoreApply, 1.5M events: 37–49k → 56–69k events/s, CPU/event −3%.
	if po.Experimental.ValueSeparationPolicy == nil {
		po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{
				Enabled:               true,
				MinimumSize:           256,
				MaxBlobReferenceDepth: 10,
				RewriteMinimumAge:     5 * time.Minute,
				TargetGarbageRatio:    0.2,
			}
		}
	}
	// The leaf-hash index's group values (~2.5 KiB) stay in their
	// sstables: a lookup reads one per completed group, and a blob file
	// read each would multiply its cost.
	if po.Experimental.SpanPolicyFunc == nil {
		po.Experimental.SpanPolicyFunc = pebble.MakeStaticSpanPolicyFunc(bytes.Compare,
			pebble.KeyRange{Start: []byte{tagHashGroup, '/'}, End: []byte{tagHashGroup, '/' + 1}},
			pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency})
	}
	if po.Logger == nil {
		po.Logger = quietLogger{}
	}
	if po.FS == nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ledger: create data dir: %w", err)
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("ledger: open pebble in %s: %w", dir, err)
	}
	s := &Store{
		db:      db,
		dir:     dir,
		fs:      po.FS,
		sync:    pebble.Sync,
		hooks:   opts.Hooks,
		bhooks:  opts.BatchHooks,
		tiles:   newTileCache(opts.TileCacheSize),
		changed: make(chan struct{}),
		hashes:  hashIndex{bits: cmp.Or(opts.hashGroupBits, defaultHashGroupBits)},
	}
	if opts.NoSync {
		s.sync = pebble.NoSync
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// quietLogger drops Pebble's informational messages and keeps errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

func (s *Store) load() error {
	v, err := s.get(keyFormat)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := s.db.Set(keyFormat, []byte(keySpaceVersion), pebble.Sync); err != nil {
			return fmt.Errorf("ledger: write format: %w", err)
		}
	case err != nil:
		return err
	case string(v) == "1":
		// Version 1 wrote a leaf-hash key per entry; they stay readable,
		// and from now on groups are written (hashindex.go). Marking the
		// directory 2 makes a binary of version 1 refuse it, rather than
		// not find the entries it has no h/ keys for.
		if err := s.db.Set(keyFormat, []byte(keySpaceVersion), pebble.Sync); err != nil {
			return fmt.Errorf("ledger: write format: %w", err)
		}
	case string(v) != keySpaceVersion:
		return fmt.Errorf("%w: key-space version %q, want %q", ErrCorrupt, v, keySpaceVersion)
	}
	st := TreeState{}
	s.rng = merkle.NewRange()
	v, err = s.get(keyState)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		size, applied, frontier, err := decodeState(v)
		if err != nil {
			return err
		}
		if s.rng, err = merkle.RestoreRange(size, frontier); err != nil {
			return fmt.Errorf("%w: tree state: %v", ErrCorrupt, err)
		}
		st = TreeState{Size: size, LastApplied: applied}
	}
	st.Root = s.rng.Root()
	// Load the right-edge rows of partial tiles.
	for lvl := uint8(0); lvl < maxTileLevels; lvl++ {
		count := levelCount(st.Size, lvl)
		if w := int(count % merkle.TileWidth); w > 0 {
			row, err := s.tileRow(lvl, count/merkle.TileWidth)
			if err != nil {
				return err
			}
			if len(row) < w {
				return fmt.Errorf("%w: tile %d/%d has %d hashes, want %d", ErrCorrupt, lvl, count/merkle.TileWidth, len(row), w)
			}
			s.edge[lvl] = append(make([]merkle.Hash, 0, merkle.TileWidth), row[:w]...)
		}
	}
	if err := s.loadIDFilter(); err != nil {
		return err
	}
	if err := s.loadHashTail(st.Size); err != nil {
		return err
	}
	s.prep = st
	s.state.Store(&st)
	return nil
}

// levelCount is how many complete nodes tree level 8*tileLevel has in a
// tree of size leaves.
func levelCount(size uint64, tileLevel uint8) uint64 {
	shift := uint(tileLevel) * merkle.TileHeight
	if shift >= 64 {
		return 0
	}
	return size >> shift
}

// state layout: 0x01 | size:8 | lastApplied:8 | popcount(size) × 32-byte frontier hashes.
func encodeState(size, applied uint64, frontier []merkle.Hash) []byte {
	b := make([]byte, 0, 17+32*len(frontier))
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, size)
	b = binary.BigEndian.AppendUint64(b, applied)
	for _, h := range frontier {
		b = append(b, h[:]...)
	}
	return b
}

func decodeState(b []byte) (size, applied uint64, frontier []merkle.Hash, err error) {
	if len(b) < 17 || b[0] != 1 {
		return 0, 0, nil, fmt.Errorf("%w: tree state header", ErrCorrupt)
	}
	size = binary.BigEndian.Uint64(b[1:])
	applied = binary.BigEndian.Uint64(b[9:])
	rest := b[17:]
	if len(rest) != 32*bits.OnesCount64(size) {
		return 0, 0, nil, fmt.Errorf("%w: tree state has %d frontier bytes for size %d", ErrCorrupt, len(rest), size)
	}
	for ; len(rest) > 0; rest = rest[32:] {
		frontier = append(frontier, merkle.Hash(rest[:32]))
	}
	return size, applied, frontier, nil
}

// State returns the committed tree state.
func (s *Store) State() TreeState { return *s.state.Load() }

// Changed returns a channel that is closed at the next commit.
func (s *Store) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

// Close closes the database. Apply must not be running.
func (s *Store) Close() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	s.ids.free()
	s.ids = nil
	return err
}

// Apply appends a batch of canonical leaves as batch number seq and
// returns when it is durable.
//
// It is deterministic and idempotent: a seq at or below the last applied
// one changes nothing (the results are looked up again), a leaf whose
// event id is already stored (or appears earlier in the same batch) is a
// duplicate and gets the original's index. Everything the batch changes —
// entries, indexes, tiles, tree state, hook writes and seq — is written in
// one Pebble batch, synced unless the store was opened with NoSync.
//
// A malformed leaf rejects the whole batch with ErrInvalid and changes
// nothing. A storage failure poisons the store: every later Apply fails,
// because the in-memory tree may be ahead of what the disk holds.
func (s *Store) Apply(seq uint64, leaves [][]byte) ([]Result, error) {
	res, wait, err := s.prepare(seq, leaves, false)
	if err != nil {
		return nil, err
	}
	if err := wait(); err != nil {
		return nil, err
	}
	return res, nil
}

// ApplyNext applies leaves as the batch after the last one applied, like
// Apply, but returns as soon as the batch is in Pebble's commit pipeline,
// so the caller can prepare the next batch while this one syncs. wait
// returns once the batch is durable; only then are its results
// acknowledged and its state published to readers. Batches become
// durable in the order ApplyNext was called.
func (s *Store) ApplyNext(leaves [][]byte) (results []Result, wait func() error, err error) {
	return s.prepare(0, leaves, true)
}

func noWait() error { return nil }

// prepare does the work of Apply up to handing the batch to Pebble. With
// next set, seq is chosen as the one after the last prepared batch.
func (s *Store) prepare(seq uint64, leaves [][]byte, next bool) ([]Result, func() error, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.db == nil {
		return nil, nil, ErrClosed
	}
	if errp := s.failed.Load(); errp != nil {
		return nil, nil, *errp
	}
	prep := s.prep
	if next {
		seq = prep.LastApplied + 1
	}
	if seq <= prep.LastApplied {
		res, err := s.lookupResults(leaves, prep.Size)
		return res, noWait, err
	}

	// Phase 1: read-only checks. Nothing has changed if this fails.
	results := make([]Result, len(leaves))
	var seen map[string]int
	if len(leaves) > 1 {
		seen = make(map[string]int, len(leaves))
	}
	for i, leaf := range leaves {
		id, err := LeafID(leaf)
		if err != nil {
			return nil, nil, fmt.Errorf("leaf %d of batch %d: %w", i, seq, err)
		}
		if id == "" {
			return nil, nil, fmt.Errorf("%w: leaf %d of batch %d has no id", ErrInvalid, i, seq)
		}
		results[i].ID = id
		if j, ok := seen[id]; ok {
			results[i].Duplicate = true
			results[i].Index = uint64(j) // resolved to the first's index below
			continue
		}
		if seen != nil {
			seen[id] = i
		}
		if !s.ids.mayContain(id) {
			continue // certainly new
		}
		// Earlier prepared batches are visible here even before they are
		// durable (Pebble publishes before the WAL sync completes).
		idx, err := s.indexOf(idKey(id), prep.Size)
		switch {
		case err == nil:
			orig, err := s.leaf(idx, prep.Size)
			if err != nil {
				return nil, nil, err
			}
			results[i] = Result{Index: idx, ID: id, LeafHash: merkle.LeafHash(orig), Leaf: orig, Duplicate: true}
		case !errors.Is(err, ErrNotFound):
			return nil, nil, err
		}
	}

	// Phase 2: extend the tree and fill the batch, sized up front: a
	// batch that grows by doubling from Pebble's 1 KiB copies its data
	// about once more and allocates twice its size, per batch (Pebble's
	// batch pool rarely survives the GC cycles between two batches).
	est, leafBytes := 4<<10, 0
	for i, leaf := range leaves {
		leafBytes += len(leaf) + len(results[i].ID)
	}
	est += leafBytes + len(leaves)*max(batchBytesPerEntry, s.extraPerEntry+s.extraPerEntry/8)
	b := s.db.NewBatchWithSize(est, pebble.WithMaxRetainedSizeBytes(maxRetainedBatch))
	if next {
		s.writeQueued(b)
	}
	// A partial tile is written as segments: each batch adds one key with
	// just the hashes it appended (from segStart on), so a small batch
	// costs a few bytes, not a rewrite of the whole row. A tile that fills
	// up is written as one full row and its segments are deleted.
	var segStart [maxTileLevels]int
	for lvl := range s.edge {
		segStart[lvl] = len(s.edge[lvl])
	}
	visit := func(id merkle.NodeID, h merkle.Hash) {
		if id.Level%merkle.TileHeight != 0 {
			return
		}
		lvl := id.Level / merkle.TileHeight
		s.edge[lvl] = append(s.edge[lvl], h)
		if len(s.edge[lvl]) == merkle.TileWidth {
			tile := id.Index / merkle.TileWidth
			b.Set(tileKey(lvl, tile), encodeRow(s.edge[lvl]), nil)
			b.DeleteRange(tileSegKey(lvl, tile, 0), tileKey(lvl, tile+1), nil)
			s.edge[lvl] = s.edge[lvl][:0]
			segStart[lvl] = 0
		}
	}
	for i, leaf := range leaves {
		r := &results[i]
		if r.Duplicate {
			if r.Leaf == nil { // duplicate within this batch
				*r = results[r.Index]
				r.Duplicate = true
			}
			continue
		}
		r.Index, r.Leaf, r.LeafHash = s.rng.Size(), leaf, merkle.LeafHash(leaf)
		s.rng.Append(r.LeafHash, visit)
		s.ids.add(r.ID)
	}
	// Writes go table by table: Pebble's memtable insert is much cheaper
	// for ascending keys (it reuses the previous insert's position), and
	// entry indices ascend, as do server-assigned (UUIDv7) ids.
	// Entry keys are built in a scratch buffer: Set copies them.
	var scratch [2 + 8]byte
	for i := range results {
		if r := &results[i]; !r.Duplicate {
			b.Set(appendEntryKey(scratch[:0], r.Index), r.Leaf, nil)
		}
	}
	for i := range results {
		if r := &results[i]; !r.Duplicate {
			d := b.SetDeferred(2+len(r.ID), 8)
			d.Key[0], d.Key[1] = tagID, '/'
			copy(d.Key[2:], r.ID)
			binary.BigEndian.PutUint64(d.Value, r.Index)
			d.Finish()
		}
	}
	if err := s.addHashes(b, results, prep.Size, s.rng.Size()); err != nil {
		b.Close()
		return nil, nil, s.poison(fmt.Errorf("ledger: leaf-hash index of batch %d: %w", seq, err))
	}
	for i := range results {
		r := &results[i]
		if r.Duplicate {
			continue
		}
		for _, h := range s.hooks {
			if err := h(batchWriter{b}, r.Index, r.Leaf); err != nil {
				b.Close()
				return nil, nil, s.poison(fmt.Errorf("ledger: apply hook at index %d: %w", r.Index, err))
			}
		}
	}
	for _, h := range s.bhooks {
		if err := h(batchWriter{b}); err != nil {
			b.Close()
			return nil, nil, s.poison(fmt.Errorf("ledger: batch hook of batch %d: %w", seq, err))
		}
	}
	size := s.rng.Size()
	for lvl := range s.edge {
		if start := segStart[lvl]; len(s.edge[lvl]) > start {
			tile := levelCount(size, uint8(lvl)) / merkle.TileWidth
			b.Set(tileSegKey(uint8(lvl), tile, start), encodeRow(s.edge[lvl][start:]), nil)
		}
	}
	b.Set(keyState, encodeState(size, seq, s.rng.Hashes()), nil)
	st := TreeState{Size: size, Root: s.rng.Root(), LastApplied: seq}
	if len(leaves) >= 100 { // small batches say little about the rest
		s.extraPerEntry = (len(b.Repr()) - leafBytes) / len(leaves)
	}

	// Phase 3: into the commit pipeline, in order; the sync is awaited by
	// the caller, outside the lock.
	wait, err := s.enqueue(b, st)
	if err != nil {
		return nil, nil, err
	}
	return results, wait, nil
}

// enqueue puts b, the batch that makes st current, into Pebble's commit
// pipeline; the caller holds applyMu. The returned wait awaits its sync
// and publishes st. A store that does not sync commits and publishes at
// once and returns noWait.
func (s *Store) enqueue(b *pebble.Batch, st TreeState) (wait func() error, err error) {
	seq := st.LastApplied
	if s.sync != pebble.Sync {
		err := b.Commit(s.sync)
		b.Close()
		if err != nil {
			return nil, s.poison(fmt.Errorf("ledger: commit batch %d: %w", seq, err))
		}
		s.prep = st
		s.publish(st)
		return noWait, nil
	}
	if err := s.db.ApplyNoSyncWait(b, s.sync); err != nil {
		b.Close()
		return nil, s.poison(fmt.Errorf("ledger: commit batch %d: %w", seq, err))
	}
	s.prep = st
	return func() error {
		err := b.SyncWait()
		b.Close()
		if err != nil {
			return s.poison(fmt.Errorf("ledger: sync batch %d: %w", seq, err))
		}
		s.publish(st)
		return nil
	}, nil
}

// publish makes st the state readers see, unless a later one is already
// published (batches may finish their sync waits out of order; a later
// batch's sync covers every earlier one).
func (s *Store) publish(st TreeState) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if cur := s.state.Load(); cur != nil && cur.LastApplied >= st.LastApplied {
		return
	}
	s.state.Store(&st)
	s.notify()
}

func (s *Store) poison(err error) error {
	s.failed.CompareAndSwap(nil, &err)
	return err
}

// lookupResults answers a replayed batch from what is stored.
func (s *Store) lookupResults(leaves [][]byte, size uint64) ([]Result, error) {
	results := make([]Result, len(leaves))
	for i, leaf := range leaves {
		id, err := LeafID(leaf)
		if err != nil {
			return nil, err
		}
		idx, err := s.indexOf(idKey(id), size)
		if err != nil {
			return nil, fmt.Errorf("ledger: replayed batch: id %q: %w", id, err)
		}
		orig, err := s.leaf(idx, size)
		if err != nil {
			return nil, err
		}
		results[i] = Result{Index: idx, ID: id, LeafHash: merkle.LeafHash(orig), Leaf: orig, Duplicate: !bytes.Equal(orig, leaf)}
	}
	return results, nil
}

// batchWriter adapts a Pebble batch to KVWriter.
type batchWriter struct{ b *pebble.Batch }

func (w batchWriter) Set(key, value []byte) error { return w.b.Set(key, value, nil) }
func (w batchWriter) Delete(key []byte) error     { return w.b.Delete(key, nil) }

func encodeRow(row []merkle.Hash) []byte {
	b := make([]byte, 0, len(row)*merkle.HashSize)
	for i := range row {
		b = append(b, row[i][:]...)
	}
	return b
}

// get returns a copy of the value at key, or ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read %q: %w", key[:2], err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// indexOf reads an index table entry; size bounds the valid indices.
func (s *Store) indexOf(key []byte, size uint64) (uint64, error) {
	v, err := s.get(key)
	if err != nil {
		return 0, err
	}
	idx, ok := decodeIndex(v)
	if !ok || idx >= size {
		// The index table is written in the same batch as the entry, so
		// an index beyond the committed size means the data is corrupt.
		return 0, fmt.Errorf("%w: index entry %q", ErrCorrupt, key)
	}
	return idx, nil
}

// Leaf returns the leaf bytes at index.
func (s *Store) Leaf(index uint64) ([]byte, error) { return s.leaf(index, s.State().Size) }

func (s *Store) leaf(index, size uint64) ([]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d (tree size %d)", ErrNotFound, index, size)
	}
	v, err := s.get(entryKey(index))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: entry %d missing below tree size", ErrCorrupt, index)
	}
	return v, err
}

// IndexByID returns the index of the entry with event id id.
func (s *Store) IndexByID(id string) (uint64, error) {
	idx, err := s.indexOf(idKey(id), s.State().Size)
	if errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	return idx, err
}

// ScanLeaves calls fn for each entry from index from up to (not
// including) the committed size at the time of the call, in order.
func (s *Store) ScanLeaves(ctx context.Context, from uint64, fn func(index uint64, leaf []byte) error) error {
	size := s.State().Size
	if from >= size {
		return nil
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: entryKey(from), UpperBound: entryKey(size)})
	if err != nil {
		return fmt.Errorf("ledger: scan: %w", err)
	}
	defer it.Close()
	want := from
	for ok := it.First(); ok; ok = it.Next() {
		if want%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		idx := binary.BigEndian.Uint64(it.Key()[2:])
		if idx != want {
			return fmt.Errorf("%w: entry %d missing", ErrCorrupt, want)
		}
		if err := fn(idx, it.Value()); err != nil {
			return err
		}
		want++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("ledger: scan: %w", err)
	}
	if want != size {
		return fmt.Errorf("%w: entry %d missing", ErrCorrupt, want)
	}
	return nil
}

// DB exposes the Pebble handle to the packages that keep their own
// tables in it (see keys.go) and to snapshots. Writes must go through
// Apply hooks or the owning package's deterministic commands.
func (s *Store) DB() *pebble.DB { return s.db }

// KV is one write to a reserved table (see keys.go): a set, or a delete
// when Delete is true.
type KV struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// reservedTag reports whether key lies in a table other packages may
// write through ApplyKV.
func reservedTag(key []byte) bool {
	if len(key) < 3 || key[1] != '/' {
		return false
	}
	switch key[0] {
	case 'q', 'f', 's', 'x', 'c':
		return true
	}
	return false
}

// ApplyKV applies writes to reserved tables as batch number seq, with the
// same replay rule as Apply (seq at or below the last applied one is a
// no-op), and returns when they are durable. Keys outside the reserved
// tables are refused with ErrInvalid.
func (s *Store) ApplyKV(seq uint64, ops []KV) error { return s.applyKV(seq, ops, false) }

// ApplyKVNext applies ops as the batch after the last one applied.
func (s *Store) ApplyKVNext(ops []KV) error { return s.applyKV(0, ops, true) }

func (s *Store) applyKV(seq uint64, ops []KV, next bool) error {
	if err := checkReserved(ops); err != nil {
		return err
	}
	wait, err := s.prepareKV(seq, ops, next)
	if err != nil {
		return err
	}
	// The sync is awaited outside the apply lock, as for leaves: feed
	// cursors commit many times a second, and a sync under the lock
	// stalled the append path behind each of them.
	return wait()
}

// KVWrites counts the KV batches (ApplyKV, ApplyKVNext) and restores
// this store has made visible. It changes only after the write it counts
// can be read, so a reader that notes it, then reads the reserved tables,
// may keep what it read for as long as KVWrites still returns that value:
// key and token caches, which leaf batches (that never write those
// tables) would otherwise invalidate at every append. QueueKV's writes do
// not count: they only add keys, and their writer knows them already.
func (s *Store) KVWrites() uint64 { return s.kvWrites.Load() }

// QueueKV queues ops for the next batch this store numbers itself
// (ApplyNext, ApplyKVNext: a LocalCommitter's), written in that batch
// before its own writes, and returns at once. It is for writes that
// matter only together with later leaves — the data key of a new
// subject, which the leaves appended next are encrypted under: any leaf
// batch prepared after QueueKV returns holds the ops or follows a batch
// that did, in the same Pebble batch or an earlier one in Pebble's
// ordered log, so no crash keeps the leaves without the key, and the key
// costs neither a commit nor an fsync of its own. Until that batch, Get
// and ScanKV do not see the ops (FlushQueuedKV writes them now).
func (s *Store) QueueKV(ops []KV) error {
	if err := checkReserved(ops); err != nil {
		return err
	}
	s.queueMu.Lock()
	s.queued = append(s.queued, ops...)
	s.queueMu.Unlock()
	return nil
}

// FlushQueuedKV writes the queued ops as the next batch and returns once
// it is durable: then so is every op queued before the call, including
// those another batch took from the queue but had not synced yet. For a
// reader that must see every key written so far (an erasure, before it
// lists a subject's data keys).
func (s *Store) FlushQueuedKV() error { return s.ApplyKVNext(nil) }

// writeQueued moves the queued ops into b; the caller holds applyMu and
// enqueues b, or poisons the store.
func (s *Store) writeQueued(b *pebble.Batch) {
	s.queueMu.Lock()
	ops := s.queued
	s.queued = nil
	s.queueMu.Unlock()
	writeOps(b, ops)
}

// writeOps adds ops to b, in order.
func writeOps(b *pebble.Batch, ops []KV) {
	for _, op := range ops {
		if op.Delete {
			b.Delete(op.Key, nil)
		} else {
			b.Set(op.Key, op.Value, nil)
		}
	}
}

// checkReserved refuses ops outside the reserved tables.
func checkReserved(ops []KV) error {
	for _, op := range ops {
		if !reservedTag(op.Key) {
			return fmt.Errorf("%w: key %q is not in a reserved table", ErrInvalid, op.Key)
		}
	}
	return nil
}

// prepareKV puts ops into the commit pipeline as batch seq (or the next
// one, after the queued ops) and returns what to wait for.
func (s *Store) prepareKV(seq uint64, ops []KV, next bool) (wait func() error, err error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if errp := s.failed.Load(); errp != nil {
		return nil, *errp
	}
	st := s.prep
	if next {
		seq = st.LastApplied + 1
	}
	if seq <= st.LastApplied {
		return noWait, nil
	}
	b := s.db.NewBatch()
	if next {
		s.writeQueued(b)
	}
	writeOps(b, ops)
	b.Set(keyState, encodeState(st.Size, seq, s.rng.Hashes()), nil)
	st.LastApplied = seq
	synced, err := s.enqueue(b, st)
	if err != nil {
		return nil, err
	}
	s.kvWrites.Add(1) // the batch is visible now (see KVWrites)
	return synced, nil
}

// Get reads a key of a reserved table; ErrNotFound when absent.
func (s *Store) Get(key []byte) ([]byte, error) { return s.get(key) }
