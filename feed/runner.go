package feed

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/auditledger/ledgerd/ledger"
)

// runner delivers the feed to one sink.
type runner struct {
	m    *Manager
	spec SinkSpec
	d    Delivery // with defaults
	log  *slog.Logger
	rng  *rand.Rand // backoff jitter; used by the runner goroutine only

	// dlMu guards deadLetter, the open dead-letter file. It is apart from
	// mu so that writing and syncing the file never holds up Healthy and
	// Status: every append response asks Healthy.
	dlMu       sync.Mutex
	deadLetter *os.File

	mu           sync.Mutex // guards the fields below
	running      bool
	next         uint64 // cursor while running
	delivered    uint64
	failed       uint64
	deadLettered uint64
	lastErr      error
	lastErrAt    time.Time
	failingSince time.Time
	alerting     bool
	lastDelivery time.Time
}

func newRunner(m *Manager, spec SinkSpec, seed uint64) *runner {
	d := spec.Delivery.WithDefaults()
	return &runner{
		m: m, spec: spec, d: d,
		log: m.log.With("sink", d.Name, "type", spec.Type),
		rng: rand.New(rand.NewPCG(seed, 0x5eed)),
	}
}

// loop runs the sink until ctx ends, restarting it after errors.
func (r *runner) loop(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	attempt := 0
	for ctx.Err() == nil {
		err := r.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrNotLeader) {
			// The supervisor stops us on its next poll.
			sleep(ctx, r.m.cfg.LeaderPoll)
			continue
		}
		r.fail(err, 0)
		sleep(ctx, r.backoff(attempt))
		attempt++
	}
}

// run loads the cursor and delivers until ctx ends or an error that a
// fresh start may cure (a store error, a lost leadership).
func (r *runner) run(ctx context.Context) error {
	st := r.m.cfg.Store
	if b := r.m.cfg.Barrier; b != nil {
		bctx, cancel := context.WithTimeout(ctx, r.d.Timeout.D())
		err := b(bctx)
		cancel()
		if err != nil {
			return fmt.Errorf("feed: barrier before reading the cursor: %w", err)
		}
	}
	next, ok, err := ReadCursor(st, r.d.Name)
	if err != nil {
		return err
	}
	if !ok && r.d.StartFrom == "latest" {
		next = st.State().Size
		if err := r.commit(ctx, next); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.running, r.next = true, next
	r.mu.Unlock()
	r.log.Info("sink running", "cursor", next)

	// A reader goroutine reads and encodes the next batch while this one
	// is delivered: at most three batches are in memory (one being
	// delivered, one queued, one being read).
	sub := Subscribe(st, next, Options{Buffer: r.d.BatchSize, Follow: true})
	rctx, cancel := context.WithCancel(ctx)
	batches := make(chan readBatch, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		for {
			b, err := sub.NextBatch(rctx, r.d.BatchSize, r.d.BatchWait.D())
			encodeBatch(b, r.d.IncludeLeaf)
			select {
			case batches <- readBatch{b, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	if ps, ok := r.spec.Sink.(Pipeliner); ok && r.d.InFlight > 1 {
		return r.pipeline(ctx, ps, batches)
	}
	for rb := range batches {
		if rb.err != nil {
			return rb.err
		}
		batch := rb.items
		if err := r.deliver(ctx, batch); err != nil {
			return err
		}
		if err := r.advance(ctx, batch); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// advance moves the cursor past batch, which the receiver has
// acknowledged, and replicates it.
func (r *runner) advance(ctx context.Context, batch []*Item) error {
	last := batch[len(batch)-1].Index + 1
	r.mu.Lock()
	r.next = last
	r.mu.Unlock()
	if err := r.commit(ctx, last); err != nil {
		if errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
			return err
		}
		// Delivery goes on; the next commit persists the cursor.
		r.log.Warn("cursor commit failed", "cursor", last, "err", err)
	}
	return nil
}

// flight is a batch sent to a Pipeliner and not yet acknowledged.
type flight struct {
	items  []*Item
	wait   func() error
	cancel context.CancelFunc
}

// pipeline delivers with up to InFlight batches sent and not yet
// acknowledged, so that the receiver's latency overlaps the next
// batches' sending. Acknowledgements are taken in feed order and the
// cursor moves past a batch only when it and every batch before it are
// acknowledged, so at-least-once holds; a restart re-sends at most the
// batches in flight. After a failure the batches in flight are waited
// for, then each is retried alone (deliver) in order.
func (r *runner) pipeline(ctx context.Context, ps Pipeliner, batches <-chan readBatch) error {
	var inflight []flight
	defer func() {
		for _, f := range inflight {
			f.cancel()
		}
	}()
	send := func(batch []*Item) {
		actx, cancel := context.WithTimeout(ctx, r.d.Timeout.D())
		inflight = append(inflight, flight{batch, ps.Send(actx, batch), cancel})
	}
	var readErr error
	for readErr == nil || len(inflight) > 0 {
		if readErr == nil && len(inflight) < r.d.InFlight {
			var rb readBatch
			var ok bool
			if len(inflight) == 0 {
				rb, ok = <-batches
			} else {
				select {
				case rb, ok = <-batches:
				default:
				}
			}
			switch {
			case ok && rb.err != nil:
				readErr = rb.err
				continue
			case ok:
				if !r.m.isLeader() {
					readErr = ErrNotLeader
					continue
				}
				send(rb.items)
				continue
			case len(inflight) == 0:
				// The reader stopped without an error: ctx ended.
				return ctx.Err()
			}
		}
		f := inflight[0]
		err := f.wait()
		f.cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Settle what is still in flight, then retry in order.
			errs := make([]error, len(inflight))
			errs[0] = err
			for i := 1; i < len(inflight); i++ {
				errs[i] = inflight[i].wait()
				inflight[i].cancel()
			}
			rest := inflight
			inflight = nil
			for i, g := range rest {
				if errs[i] != nil {
					if err := r.retry(ctx, g.items, errs[i]); err != nil {
						return err
					}
				} else {
					r.succeed(len(g.items))
				}
				if err := r.advance(ctx, g.items); err != nil {
					return err
				}
			}
			continue
		}
		r.succeed(len(f.items))
		inflight = inflight[1:]
		if err := r.advance(ctx, f.items); err != nil {
			return err
		}
	}
	return readErr
}

type readBatch struct {
	items []*Item
	err   error
}

// commit replicates the cursor.
func (r *runner) commit(ctx context.Context, next uint64) error {
	if !r.m.isLeader() {
		return ErrNotLeader
	}
	cctx, cancel := context.WithTimeout(ctx, r.d.Timeout.D())
	defer cancel()
	err := r.m.cfg.Committer.CommitKV(cctx, []ledger.KV{{Key: CursorKey(r.d.Name), Value: binary.BigEndian.AppendUint64(nil, next)}})
	if errors.Is(err, ledger.ErrNotLeader) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

// deliver hands batch to the sink until every item is acknowledged or
// dead-lettered. It returns only ctx's error or ErrNotLeader.
func (r *runner) deliver(ctx context.Context, batch []*Item) error {
	return r.retry(ctx, batch, nil)
}

// retry is deliver for a batch whose first attempt, when err is not
// nil, has already failed with err.
func (r *runner) retry(ctx context.Context, batch []*Item, err error) error {
	pending := batch
	for attempt := 0; ; attempt++ {
		if err == nil || attempt > 0 {
			if !r.m.isLeader() {
				return ErrNotLeader
			}
			actx, cancel := context.WithTimeout(ctx, r.d.Timeout.D())
			err = r.spec.Sink.Deliver(actx, pending)
			cancel()
			if err == nil {
				r.succeed(len(pending))
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failed, rejected := r.split(pending, err)
		if n := len(pending) - len(failed) - len(rejected); n > 0 {
			r.count(n)
		}
		if len(rejected) > 0 {
			if r.d.DeadLetterFile != "" {
				if dlErr := r.writeDeadLetters(rejected); dlErr != nil {
					r.log.Error("dead-letter write failed", "err", dlErr)
					failed = appendRejected(failed, rejected)
				}
			} else {
				failed = appendRejected(failed, rejected)
			}
		}
		if len(failed) == 0 {
			r.succeed(0)
			return nil
		}
		r.fail(err, len(failed))
		pending = sortByIndex(failed)
		if serr := sleep(ctx, r.backoff(attempt)); serr != nil {
			return serr
		}
	}
}

// split sorts the items of a failed attempt into those to retry and
// those the receiver rejected for good.
func (r *runner) split(pending []*Item, err error) (failed []*Item, rejected []rejection) {
	var pe *PartialError
	if !errors.As(err, &pe) {
		if errors.Is(err, ErrRejected) {
			for _, it := range pending {
				rejected = append(rejected, rejection{it, err})
			}
			return nil, rejected
		}
		return pending, nil
	}
	for _, f := range pe.Failed {
		if f.Pos < 0 || f.Pos >= len(pending) {
			continue
		}
		if errors.Is(f.Err, ErrRejected) {
			rejected = append(rejected, rejection{pending[f.Pos], f.Err})
		} else {
			failed = append(failed, pending[f.Pos])
		}
	}
	return failed, rejected
}

type rejection struct {
	it  *Item
	err error
}

// appendRejected retries rejected items like failed ones.
func appendRejected(failed []*Item, rej []rejection) []*Item {
	for _, x := range rej {
		failed = append(failed, x.it)
	}
	return failed
}

func sortByIndex(items []*Item) []*Item {
	// Items come from one batch in index order, failed first then
	// rejected; restore index order so retries keep the feed's order.
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].Index < items[j-1].Index; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	return items
}

// deadLetter is one line of a dead-letter file.
type deadLetter struct {
	Sink   string    `json:"sink"`
	At     time.Time `json:"at"`
	Error  string    `json:"error"`
	Record Record    `json:"record"`
}

// writeDeadLetters appends rejected items to the dead-letter file and
// syncs it before the cursor may move past them.
func (r *runner) writeDeadLetters(rej []rejection) error {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	if r.deadLetter == nil {
		f, err := os.OpenFile(r.d.DeadLetterFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("feed: open dead-letter file: %w", err)
		}
		r.deadLetter = f
	}
	var buf []byte
	for _, x := range rej {
		b, err := json.Marshal(deadLetter{Sink: r.d.Name, At: r.m.cfg.Now().UTC(), Error: x.err.Error(), Record: NewRecord(x.it, true)})
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := r.deadLetter.Write(buf); err != nil {
		return fmt.Errorf("feed: write dead-letter file: %w", err)
	}
	if err := r.deadLetter.Sync(); err != nil {
		return fmt.Errorf("feed: sync dead-letter file: %w", err)
	}
	r.mu.Lock()
	r.deadLettered += uint64(len(rej))
	r.mu.Unlock()
	r.m.metrics.deadLettered.WithLabelValues(r.d.Name).Add(float64(len(rej)))
	r.log.Warn("entries rejected by the receiver went to the dead-letter file", "count", len(rej), "first", rej[0].it.Index, "file", r.d.DeadLetterFile, "err", rej[0].err)
	return nil
}

func (r *runner) count(n int) {
	r.mu.Lock()
	r.delivered += uint64(n)
	r.mu.Unlock()
	r.m.metrics.delivered.WithLabelValues(r.d.Name).Add(float64(n))
}

// succeed records a delivery of n items and clears the failure state.
func (r *runner) succeed(n int) {
	now := r.m.cfg.Now()
	r.mu.Lock()
	r.delivered += uint64(n)
	r.lastDelivery = now
	wasAlerting := r.alerting
	failing := !r.failingSince.IsZero()
	r.failingSince, r.alerting = time.Time{}, false
	r.mu.Unlock()
	if n > 0 {
		r.m.metrics.delivered.WithLabelValues(r.d.Name).Add(float64(n))
	}
	if wasAlerting {
		r.m.metrics.alerting.WithLabelValues(r.d.Name).Set(0)
		r.log.Info("sink recovered")
	} else if failing {
		r.log.Info("sink delivering again")
	}
}

// fail records a failed attempt with n items; it raises the alert once
// the sink has failed for AlertAfter.
func (r *runner) fail(err error, n int) {
	now := r.m.cfg.Now()
	r.mu.Lock()
	r.failed += uint64(n)
	r.lastErr, r.lastErrAt = err, now
	if r.failingSince.IsZero() {
		r.failingSince = now
	}
	raise := !r.alerting && now.Sub(r.failingSince) >= r.d.AlertAfter.D()
	if raise {
		r.alerting = true
	}
	since := r.failingSince
	r.mu.Unlock()
	if n > 0 {
		r.m.metrics.failed.WithLabelValues(r.d.Name).Add(float64(n))
	}
	if raise {
		r.m.metrics.alerting.WithLabelValues(r.d.Name).Set(1)
		r.log.Error("ALERT: sink failing", "since", since, "err", err)
	} else {
		r.log.Warn("delivery failed; retrying", "items", n, "err", err)
	}
}

// alertingNow reports the alert, raising it if the failure has lasted
// AlertAfter even when no attempt has ended since (a hung receiver).
func (r *runner) alertingNow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alerting || (!r.failingSince.IsZero() && r.m.cfg.Now().Sub(r.failingSince) >= r.d.AlertAfter.D())
}

// backoff returns the wait before retry number attempt: exponential
// from MinBackoff, capped at MaxBackoff, with "equal jitter" (half fixed,
// half random) so that many sinks do not retry in step.
func (r *runner) backoff(attempt int) time.Duration {
	d := r.d.MinBackoff.D()
	for i := 0; i < attempt && d < r.d.MaxBackoff.D(); i++ {
		d *= 2
	}
	d = min(d, r.d.MaxBackoff.D())
	half := d / 2
	return half + time.Duration(r.rng.Int64N(int64(half)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cursor returns the next index to deliver: the runner's while it runs,
// else the replicated one.
func (r *runner) cursor() (uint64, error) {
	r.mu.Lock()
	running, next := r.running, r.next
	r.mu.Unlock()
	if running {
		return next, nil
	}
	next, _, err := ReadCursor(r.m.cfg.Store, r.d.Name)
	return next, err
}

func (r *runner) lag() (events uint64, seconds float64) {
	next, err := r.cursor()
	if err != nil {
		return 0, 0
	}
	size := r.m.cfg.Store.State().Size
	if next >= size {
		return 0, 0
	}
	events = size - next
	if leaf, err := r.m.cfg.Store.Leaf(next); err == nil {
		if e, err := ledger.DecodeLeaf(leaf); err == nil {
			seconds = max(0, r.m.cfg.Now().Sub(e.ReceivedTime()).Seconds())
		}
	}
	return events, seconds
}

func (r *runner) status() Status {
	next, _ := r.cursor()
	events, secs := r.lag()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{
		Name: r.d.Name, Type: r.spec.Type, Running: r.running,
		Cursor: next, TreeSize: r.m.cfg.Store.State().Size,
		LagEvents: events, LagSeconds: secs,
		Delivered: r.delivered, Failed: r.failed, DeadLettered: r.deadLettered,
		LastErrorAt: r.lastErrAt, FailingSince: r.failingSince, LastDelivery: r.lastDelivery,
		Alerting: r.alerting || (!r.failingSince.IsZero() && r.m.cfg.Now().Sub(r.failingSince) >= r.d.AlertAfter.D()),
	}
	if r.lastErr != nil {
		s.LastError = r.lastErr.Error()
	}
	return s
}

func (r *runner) close() error {
	r.dlMu.Lock()
	f := r.deadLetter
	r.deadLetter = nil
	r.dlMu.Unlock()
	err := r.spec.Sink.Close()
	if f != nil {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}
