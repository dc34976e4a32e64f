package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/merkle"
)

// Committer makes a batch of sealed leaves durable and applied, and
// returns one Result per leaf. The single-node committer calls
// Store.Apply; the cluster's proposes the batch through Raft.
//
// CommitKV replicates writes to the reserved tables of other packages
// (feed cursors, tokens, subject keys) the same way, applied with
// Store.ApplyKV, so every node holds the same bytes.
type Committer interface {
	Commit(ctx context.Context, leaves [][]byte) ([]Result, error)
	CommitKV(ctx context.Context, ops []KV) error
}

// AsyncCommitter is a Committer that can hand a batch over in order and
// wait for its durability separately, so the group-commit loop prepares
// the next batch while this one syncs.
type AsyncCommitter interface {
	Committer
	// CommitAsync starts committing leaves after every batch started
	// before; wait returns the results once they are durable.
	CommitAsync(ctx context.Context, leaves [][]byte) (wait func() ([]Result, error), err error)
}

// LocalCommitter commits straight to a Store, numbering batches itself
// (Store.ApplyNext). Commit, CommitAsync and CommitKV may be called
// concurrently (the group-commit loop and the feed's cursor writes do):
// each numbers and applies its batch under the store's apply lock, so
// neither is mistaken for a replay of the other.
type LocalCommitter struct{ Store *Store }

// Commit applies leaves as the next batch.
func (c LocalCommitter) Commit(ctx context.Context, leaves [][]byte) ([]Result, error) {
	wait, err := c.CommitAsync(ctx, leaves)
	if err != nil {
		return nil, err
	}
	return wait()
}

// CommitAsync applies leaves as the next batch and returns a function
// that waits for it to be durable.
func (c LocalCommitter) CommitAsync(_ context.Context, leaves [][]byte) (func() ([]Result, error), error) {
	res, wait, err := c.Store.ApplyNext(leaves)
	if err != nil {
		return nil, err
	}
	return func() ([]Result, error) {
		if err := wait(); err != nil {
			return nil, err
		}
		return res, nil
	}, nil
}

// CommitKV applies ops as the next batch.
func (c LocalCommitter) CommitKV(_ context.Context, ops []KV) error {
	return c.Store.ApplyKVNext(ops)
}

// CommitKVAhead queues ops for the next batch (Store.QueueKV): written
// and synced with the leaves that need them, and before any of those.
func (c LocalCommitter) CommitKVAhead(_ context.Context, ops []KV) error {
	return c.Store.QueueKV(ops)
}

// FlushKVAhead makes the ops queued by CommitKVAhead durable and visible
// now (Store.FlushQueuedKV).
func (c LocalCommitter) FlushKVAhead(context.Context) error {
	return c.Store.FlushQueuedKV()
}

// Committer returns the ledger's committer, for packages that replicate
// their own state (CommitKV).
func (l *Ledger) Committer() Committer { return l.cfg.Committer }

// Config configures a Ledger. Store, Origin, Signer and HMAC are required.
type Config struct {
	Store  *Store
	Origin string      // checkpoint origin line
	Signer note.Signer // Ed25519 checkpoint key
	HMAC   *Keyring    // entry signatures

	// Committer defaults to LocalCommitter{Store}.
	Committer Committer

	// Group commit: a batch closes at MaxBatchEvents events or
	// MaxBatchBytes bytes, or when no append has arrived for MaxWait
	// (0: as soon as the queue is empty). Defaults 10000, 16 MiB, 0.
	MaxBatchEvents int
	MaxBatchBytes  int
	MaxWait        time.Duration
	// MaxPending is how many append calls may queue before ErrPushback.
	// Default 4096.
	MaxPending int

	// CheckpointInterval is the least time between two signed
	// checkpoints while a caller waits for one (WaitCheckpoint: appends
	// that asked for their checkpoint, proofs of entries newer than the
	// last checkpoint, feed subscribers). Default 2ms.
	//
	// IdleCheckpointInterval is the least time between two while nobody
	// waits: a checkpoint of the newest state is still signed that often
	// under load, and at once after a quiet period. Default 200ms. Signing
	// every 2ms when nobody asked cost ~8% of the server's CPU per
	// sequential append.
	CheckpointInterval     time.Duration
	IdleCheckpointInterval time.Duration

	// Now and NewID stamp events; defaults time.Now and UUIDv7.
	Now   func() time.Time
	NewID func() string

	// Transform, when set, rewrites a batch after it is validated and
	// before it is sealed (field encryption): it calls seal once for each
	// event, in order, with the event to seal in its place (valid only
	// during the call), stops at seal's first error, and returns it. It
	// must not modify the caller's events (or their metadata maps) in
	// place: callers retry batches (self-audit) or forward them (a
	// cluster follower). Handing events over one at a time, instead of
	// returning a rewritten copy of the batch, saves a ~300 kB slice per
	// batch of 1000. Its events are not validated again (that was 3% of
	// the CPU of batch appends with encryption on): it must keep valid
	// events valid, which only replacing string values by non-empty
	// valid UTF-8, or by searchable encrypted values in binary
	// (internal/sealed: stored in the leaf as they are, read back as
	// their text), does (field sizes are bounded per leaf and per batch
	// below). Seal fails with its error.
	Transform func(events []Event, seal func(i int, e *Event) error) error

	Logger *slog.Logger
}

// AppendResult is what an append returns for one event.
type AppendResult struct {
	Index     uint64
	ID        string
	LeafHash  merkle.Hash
	KeyID     string
	Signature []byte
	Duplicate bool // the id existed; these are the original entry's values
}

// Ledger is the write path of one node: it validates, stamps and signs
// events in the caller's goroutine, gathers concurrent appends into one
// batch (group commit), hands each batch to the Committer, and signs a
// checkpoint of the Store after commits: at most every
// CheckpointInterval while a caller waits for one, else at most every
// IdleCheckpointInterval.
//
// New starts two goroutines; Close stops them. The Store is the caller's
// to close, after Close. All methods are safe for concurrent use.
type Ledger struct {
	cfg      Config
	store    *Store
	in       chan *pending
	inflight chan *flight  // sequence → awaitDurable
	slots    chan struct{} // one per batch being committed, at most maxInFlight
	stop     chan struct{}
	done     chan struct{} // closed when every queued append is finished
	closed   atomic.Bool
	wg       sync.WaitGroup

	cpMu      sync.Mutex
	cp        *Checkpoint
	cpChanged chan struct{}
	waiters   atomic.Int64  // callers blocked in WaitCheckpoint
	cpWake    chan struct{} // a caller began to wait (capacity 1)
}

type pending struct {
	leaves  [][]byte
	bytes   int
	results []Result
	err     error
	done    chan struct{}
}

// New starts a ledger over cfg.Store.
func New(cfg Config) (*Ledger, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.HMAC == nil || cfg.Origin == "" {
		return nil, errors.New("ledger: Config needs Store, Origin, Signer and HMAC")
	}
	if cfg.Committer == nil {
		cfg.Committer = LocalCommitter{cfg.Store}
	}
	if cfg.MaxBatchEvents <= 0 {
		cfg.MaxBatchEvents = MaxBatchEvents
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = MaxBatchBytes
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 4096
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 2 * time.Millisecond
	}
	if cfg.IdleCheckpointInterval <= 0 {
		cfg.IdleCheckpointInterval = 200 * time.Millisecond
	}
	cfg.IdleCheckpointInterval = max(cfg.IdleCheckpointInterval, cfg.CheckpointInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Ledger{
		cfg:       cfg,
		store:     cfg.Store,
		in:        make(chan *pending, cfg.MaxPending),
		inflight:  make(chan *flight, maxInFlight),
		slots:     make(chan struct{}, maxInFlight),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		cpChanged: make(chan struct{}),
		cpWake:    make(chan struct{}, 1),
	}
	st := l.store.State()
	cp, err := SignCheckpoint(cfg.Signer, cfg.Origin, st.Size, st.Root)
	if err != nil {
		return nil, err
	}
	l.cp = cp
	l.wg.Add(3)
	go func() { defer l.wg.Done(); defer close(l.inflight); l.sequence() }()
	go func() { defer l.wg.Done(); defer close(l.done); l.awaitDurable() }()
	go func() { defer l.wg.Done(); l.checkpoints() }()
	return l, nil
}

// Store returns the ledger's store.
func (l *Ledger) Store() *Store { return l.store }

// Origin returns the checkpoint origin.
func (l *Ledger) Origin() string { return l.cfg.Origin }

// Closed returns a channel that is closed when Close begins.
func (l *Ledger) Closed() <-chan struct{} { return l.stop }

// Close stops accepting appends, commits those already queued, stops the
// checkpoint signer and returns. It does not close the Store.
func (l *Ledger) Close(ctx context.Context) error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ledger: close: %w", ctx.Err())
	}
}

// Seal validates events and turns them into signed leaves, stamping ids
// and receive time. It is exported for the cluster's forwarding path.
func (l *Ledger) Seal(events []Event) ([][]byte, int, error) {
	if len(events) == 0 {
		return nil, 0, fmt.Errorf("%w: no events", ErrInvalid)
	}
	if len(events) > MaxBatchEvents {
		return nil, 0, fmt.Errorf("%w: %d events in one batch; at most %d", ErrTooLarge, len(events), MaxBatchEvents)
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return nil, 0, batchFieldError(len(events), i, err)
		}
	}
	now := l.cfg.Now().UnixNano()
	leaves := make([][]byte, len(events))
	total := 0
	seal := func(i int, ev *Event) error {
		e := Entry{Event: *ev, ReceivedAt: now}
		if e.ID == "" {
			e.ID = l.cfg.NewID()
		}
		leaf := l.cfg.HMAC.sealLeaf(&e)
		if len(leaf) > MaxEventBytes {
			return fmt.Errorf("%w: event %d is %d bytes encoded; at most %d", ErrTooLarge, i, len(leaf), MaxEventBytes)
		}
		total += len(leaf)
		leaves[i] = leaf
		return nil
	}
	if l.cfg.Transform != nil {
		if err := l.cfg.Transform(events, seal); err != nil {
			return nil, 0, err
		}
		// A Transform that skipped an event would commit an empty leaf.
		if i := slices.IndexFunc(leaves, func(b []byte) bool { return b == nil }); i >= 0 {
			return nil, 0, fmt.Errorf("ledger: transform did not seal event %d", i)
		}
	} else {
		for i := range events {
			if err := seal(i, &events[i]); err != nil {
				return nil, 0, err
			}
		}
	}
	if total > MaxBatchBytes {
		return nil, 0, fmt.Errorf("%w: batch is %d bytes encoded; at most %d", ErrTooLarge, total, MaxBatchBytes)
	}
	return leaves, total, nil
}

func batchFieldError(n, i int, err error) error {
	var fe *FieldError
	if n > 1 && errors.As(err, &fe) {
		return &FieldError{Field: fmt.Sprintf("events[%d].%s", i, fe.Field), Reason: fe.Reason}
	}
	return err
}

// Append validates, signs and commits events as one unit: all of them are
// in the same batch, or none is written. It returns when the batch is
// durable. Events with an id already in the log are not appended again;
// their result is the original's, marked Duplicate.
func (l *Ledger) Append(ctx context.Context, events []Event) ([]AppendResult, error) {
	leaves, n, err := l.Seal(events)
	if err != nil {
		return nil, err
	}
	results, err := l.CommitLeaves(ctx, leaves, n)
	if err != nil {
		return nil, err
	}
	return AppendResults(results, l.cfg.HMAC.CurrentID())
}

// AppendResults turns Store results into append results. Fresh entries
// carry the signature sealed into their leaf's last bytes; duplicates are
// decoded to report the original's.
// keyID is the id of the key that sealed the fresh leaves ("" to decode
// every leaf).
func AppendResults(results []Result, keyID string) ([]AppendResult, error) {
	out := make([]AppendResult, len(results))
	for i, r := range results {
		out[i] = AppendResult{Index: r.Index, ID: r.ID, LeafHash: r.LeafHash, Duplicate: r.Duplicate}
		if sig, ok := sealedSignature(r.Leaf, keyID); ok && !r.Duplicate {
			out[i].KeyID, out[i].Signature = keyID, sig
			continue
		}
		e, err := DecodeLeaf(r.Leaf)
		if err != nil {
			return nil, fmt.Errorf("%w: stored leaf %d: %v", ErrCorrupt, r.Index, err)
		}
		out[i].KeyID, out[i].Signature = e.KeyID, e.Signature
	}
	return out, nil
}

// CommitLeaves queues sealed leaves for the next batch and waits for the
// commit. bytes is their total size.
func (l *Ledger) CommitLeaves(ctx context.Context, leaves [][]byte, bytes int) ([]Result, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	p := &pending{leaves: leaves, bytes: bytes, done: make(chan struct{})}
	select {
	case l.in <- p:
	default:
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case l.in <- p:
		case <-t.C:
			return nil, ErrPushback
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.done:
			return nil, ErrClosed
		}
	}
	select {
	case <-p.done:
		return p.results, p.err
	case <-l.done:
		// The sequencer drains the queue before exiting; p.done is
		// closed unless p arrived after the drain.
		select {
		case <-p.done:
			return p.results, p.err
		default:
			return nil, ErrClosed
		}
	case <-ctx.Done():
		// The batch may still commit; a retry with the same ids is safe.
		return nil, ctx.Err()
	}
}

// sequence is the group-commit loop.
func (l *Ledger) sequence() {
	var carry *pending
	for {
		var first *pending
		if carry != nil {
			first, carry = carry, nil
		} else {
			select {
			case first = <-l.in:
			case <-l.stop:
				// Drain what was queued before Close.
				for {
					select {
					case p := <-l.in:
						l.slots <- struct{}{}
						l.commit([]*pending{p})
					default:
						return
					}
				}
			}
		}
		// Wait for a free slot before gathering: appends that arrive while
		// earlier batches sync join this one.
		l.slots <- struct{}{}
		batch := []*pending{first}
		n, size := len(first.leaves), first.bytes
		var wait <-chan time.Time
		var timer *time.Timer
		if l.cfg.MaxWait > 0 {
			timer = time.NewTimer(l.cfg.MaxWait)
			wait = timer.C
		}
	gather:
		for n < l.cfg.MaxBatchEvents && size < l.cfg.MaxBatchBytes {
			var p *pending
			select {
			case p = <-l.in:
			default:
				if wait == nil {
					break gather
				}
				select {
				case p = <-l.in:
				case <-wait:
					break gather
				}
			}
			if n+len(p.leaves) > l.cfg.MaxBatchEvents || size+p.bytes > l.cfg.MaxBatchBytes {
				carry = p
				break
			}
			batch = append(batch, p)
			n += len(p.leaves)
			size += p.bytes
		}
		if timer != nil {
			timer.Stop()
		}
		l.commit(batch)
	}
}

// maxInFlight bounds the batches handed to an AsyncCommitter whose
// durability has not been confirmed yet. Two keep the disk busy (one
// syncing, one queued behind it) while appends that arrive meanwhile
// gather into the next batch instead of many small ones.
const maxInFlight = 2

// flight is a batch handed to the committer, waiting for durability.
type flight struct {
	batch []*pending
	n     int
	wait  func() ([]Result, error)
}

// commit hands a batch to the committer. The caller holds a slot; it is
// released when the batch is finished.
func (l *Ledger) commit(batch []*pending) {
	var leaves [][]byte
	if len(batch) == 1 {
		leaves = batch[0].leaves
	} else {
		for _, p := range batch {
			leaves = append(leaves, p.leaves...)
		}
	}
	if ac, ok := l.cfg.Committer.(AsyncCommitter); ok {
		wait, err := ac.CommitAsync(context.Background(), leaves)
		if err != nil {
			l.finish(batch, len(leaves), nil, err)
			<-l.slots
			return
		}
		l.inflight <- &flight{batch: batch, n: len(leaves), wait: wait}
		return
	}
	results, err := l.cfg.Committer.Commit(context.Background(), leaves)
	l.finish(batch, len(leaves), results, err)
	<-l.slots
}

// awaitDurable completes the batches handed to an AsyncCommitter, in
// order, as each becomes durable.
func (l *Ledger) awaitDurable() {
	for f := range l.inflight {
		results, err := f.wait()
		l.finish(f.batch, f.n, results, err)
		<-l.slots
	}
}

// finish hands each pending append its share of the results.
func (l *Ledger) finish(batch []*pending, n int, results []Result, err error) {
	if err == nil && len(results) != n {
		err = fmt.Errorf("%w: committer returned %d results for %d leaves", ErrCorrupt, len(results), n)
	}
	if err != nil {
		l.cfg.Logger.Error("commit failed", "leaves", n, "err", err)
	}
	off := 0
	for _, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.results = results[off : off+len(p.leaves)]
		}
		off += len(p.leaves)
		close(p.done)
	}
}

// checkpoints signs a checkpoint after commits, at most every
// CheckpointInterval while someone waits for one and every
// IdleCheckpointInterval otherwise, and always one covering the newest
// entry.
func (l *Ledger) checkpoints() {
	var last time.Time
	for {
		changed := l.store.Changed()
		st := l.store.State()
		if cur := l.Checkpoint(); st.Size != cur.Size || st.Root != cur.Root {
			every := l.cfg.IdleCheckpointInterval
			if l.waiters.Load() > 0 {
				every = l.cfg.CheckpointInterval
			}
			if wait := every - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-l.cpWake: // a caller began to wait: sooner
					t.Stop()
				case <-l.stop:
					t.Stop()
					return
				}
				continue // re-read the state: more may have committed
			}
			cp, err := SignCheckpoint(l.cfg.Signer, l.cfg.Origin, st.Size, st.Root)
			if err != nil {
				l.cfg.Logger.Error("checkpoint signing failed", "size", st.Size, "err", err)
			} else {
				last = time.Now()
				l.publish(cp)
			}
			continue
		}
		select {
		case <-changed:
		case <-l.stop:
			return
		}
	}
}

// FreshCheckpoint returns a checkpoint that covers every entry committed
// when it was called: the newest if it does, else the next one signed
// (within CheckpointInterval, as for any waiter). If none comes within a
// second (the signer failing) it returns the newest there is.
func (l *Ledger) FreshCheckpoint(ctx context.Context) (*Checkpoint, error) {
	size := l.store.State().Size
	if cp := l.Checkpoint(); cp.Size >= size {
		return cp, nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cp, err := l.WaitCheckpoint(wctx, size)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		return l.Checkpoint(), nil
	}
	return cp, err
}

// CheckpointChanged returns a channel that is closed when a newer
// checkpoint is published. Unlike WaitCheckpoint, watching it does not
// make checkpoints more frequent.
func (l *Ledger) CheckpointChanged() <-chan struct{} {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	return l.cpChanged
}

func (l *Ledger) publish(cp *Checkpoint) {
	l.cpMu.Lock()
	l.cp = cp
	close(l.cpChanged)
	l.cpChanged = make(chan struct{})
	l.cpMu.Unlock()
}

// Checkpoint returns the newest signed checkpoint. It never covers more
// than the Store has committed.
func (l *Ledger) Checkpoint() *Checkpoint {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	return l.cp
}

// WaitCheckpoint waits for a checkpoint of at least size leaves. While
// it waits, checkpoints are signed every CheckpointInterval.
func (l *Ledger) WaitCheckpoint(ctx context.Context, size uint64) (*Checkpoint, error) {
	registered := false
	defer func() {
		if registered {
			l.waiters.Add(-1)
		}
	}()
	for {
		l.cpMu.Lock()
		cp, ch := l.cp, l.cpChanged
		l.cpMu.Unlock()
		if cp.Size >= size {
			return cp, nil
		}
		if !registered {
			registered = true
			l.waiters.Add(1)
			select {
			case l.cpWake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.stop:
			return nil, ErrClosed
		}
	}
}
