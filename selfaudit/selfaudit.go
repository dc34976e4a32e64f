// Package selfaudit records the ledger's own API use in the ledger: every
// read, query, export, report, token, key or cluster change made through
// the API becomes an audit event whose actor is the caller (the auth
// package's Guard calls Record). Appends are never recorded (that would
// loop).
//
// Recording is cheap for the request: Record puts the event in a bounded
// buffer and returns; one goroutine appends the buffer in batches
// through the ledger's write path (Append), so a burst of reads costs one
// batch append, not one per read. When the buffer is full, events are
// dropped and counted (Dropped) rather than slowing readers down.
//
// Use:
//
//  1. r := selfaudit.New(selfaudit.Options{Appender: ledger, ...}) starts
//     the flushing goroutine.
//  2. Give r to auth.NewGuard as its Auditor.
//  3. On shutdown, after the API listeners stopped and before the ledger
//     closes, r.Close(ctx) appends what is buffered and stops. The final
//     flush gets Options.CloseTimeout: a cluster node that lost its
//     quorum cannot commit it, and shutdown must not wait for that; what
//     is given up is counted and logged.
package selfaudit

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/ledger"
)

// Appender is the ledger's write path.
type Appender interface {
	Append(ctx context.Context, events []ledger.Event) ([]ledger.AppendResult, error)
}

// Options configure a Recorder.
type Options struct {
	Appender Appender
	// FlushInterval is the longest an event waits in the buffer. Default
	// 200ms.
	FlushInterval time.Duration
	// MaxBatch flushes early when this many events wait. Default 1000.
	MaxBatch int
	// Buffer is how many events may wait before new ones are dropped.
	// Default 16384.
	Buffer int
	// CloseTimeout bounds the final flush in Close (default 2s; never
	// past Close's ctx). Past it the appends still pending are abandoned,
	// counted as failed and logged.
	CloseTimeout time.Duration
	// Application is the context.application of the events. Default
	// "ledgerd".
	Application string
	Logger      *slog.Logger
	Now         func() time.Time
}

// Recorder buffers self-audit events and appends them in batches.
// Record is safe for concurrent use.
type Recorder struct {
	o       Options
	ch      chan ledger.Event
	flushCh chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// abort ends the appends of the final flush when Close gives up.
	abort     context.Context
	abortNow  context.CancelFunc
	abortOnce sync.Once

	dropped  atomic.Uint64
	failed   atomic.Uint64
	recorded atomic.Uint64
}

// New starts a recorder; Close stops it.
func New(o Options) *Recorder {
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.Buffer <= 0 {
		o.Buffer = 16384
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 2 * time.Second
	}
	if o.Application == "" {
		o.Application = "ledgerd"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{o: o, ch: make(chan ledger.Event, o.Buffer), flushCh: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	r.abort, r.abortNow = context.WithCancel(context.Background())
	go r.run()
	return r
}

// Event builds the audit event of one access.
func (r *Recorder) Event(p *auth.Principal, a auth.Access) ledger.Event {
	ev := ledger.Event{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Timestamp: r.o.Now().UTC().Format(time.RFC3339Nano),
		Actor:     ledger.Actor{ID: p.ID, Type: string(p.Kind), IP: hostOf(a.Client)},
		Action: ledger.Action{
			Type: a.Action, Resource: a.Resource, ResourceID: a.ResourceID, Result: a.Result,
			Duration: a.Duration.Milliseconds(),
			Metadata: map[string]string{"method": a.Method},
		},
		Context: ledger.Context{RequestID: a.RequestID, Application: r.o.Application},
		Version: "1.0.0",
	}
	if ev.Action.Resource == "" {
		ev.Action.Resource = "ledger"
	}
	if len(p.Roles) > 0 {
		rs := make([]string, len(p.Roles))
		for i, x := range p.Roles {
			rs[i] = string(x)
		}
		sort.Strings(rs)
		ev.Action.Metadata["roles"] = strings.Join(rs, ",")
	}
	if p.Name != "" {
		ev.Action.Metadata["principalName"] = p.Name
	}
	return ev
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Record queues the event of one access; it never blocks.
func (r *Recorder) Record(p *auth.Principal, a auth.Access) {
	if p == nil {
		p = &auth.Principal{ID: "anonymous", Kind: auth.KindAnonymous}
	}
	select {
	case <-r.stop:
		r.dropped.Add(1)
		return
	default:
	}
	select {
	case r.ch <- r.Event(p, a):
	default:
		if r.dropped.Add(1)%1000 == 1 {
			r.o.Logger.Warn("selfaudit: buffer full, dropping self-audit events", "dropped", r.dropped.Load())
		}
	}
}

// Flush appends everything recorded so far and returns when it is in
// the ledger (or ctx ends).
func (r *Recorder) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case r.flushCh <- ack:
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats are the recorder's counters.
type Stats struct{ Recorded, Dropped, Failed uint64 }

// Stats returns the counters: events appended, dropped because the
// buffer was full, and lost to failed appends.
func (r *Recorder) Stats() Stats {
	return Stats{Recorded: r.recorded.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// Close appends what is buffered and stops the recorder. Call it before
// the ledger closes. The final flush gets Options.CloseTimeout (within
// ctx): past it, Close abandons what has not been appended (the ledger
// cannot commit, e.g. a cluster node without quorum), logs how many
// events it dropped and returns nil; the shutdown goes on.
func (r *Recorder) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	failed := r.failed.Load()
	t := time.NewTimer(r.o.CloseTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	// Give up: the append in flight returns at once, the rest of the
	// buffer is not tried.
	r.abortOnce.Do(r.abortNow)
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.o.Logger.Warn("selfaudit: gave up the final flush at shutdown; self-audit events dropped",
		"dropped", r.failed.Load()-failed, "waited", r.o.CloseTimeout)
	return nil
}

func (r *Recorder) run() {
	defer close(r.done)
	t := time.NewTicker(r.o.FlushInterval)
	defer t.Stop()
	batch := make([]ledger.Event, 0, r.o.MaxBatch)
	drain := func() {
		for len(batch) < r.o.MaxBatch {
			select {
			case ev := <-r.ch:
				batch = append(batch, ev)
			default:
				return
			}
		}
	}
	flush := func() {
		for {
			drain()
			if len(batch) == 0 {
				return
			}
			r.append(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case ev := <-r.ch:
			batch = append(batch, ev)
			if len(batch) >= r.o.MaxBatch {
				r.append(batch)
				batch = batch[:0]
			}
		case <-t.C:
			flush()
		case ack := <-r.flushCh:
			flush()
			close(ack)
		case <-r.stop:
			flush()
			return
		}
	}
}

func (r *Recorder) append(batch []ledger.Event) {
	ctx, cancel := context.WithTimeout(r.abort, 30*time.Second)
	defer cancel()
	err := ctx.Err()
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		// Ids are fixed at Record time, so a retry after an ambiguous
		// failure appends each event at most once.
		if _, err = r.o.Appender.Append(ctx, batch); err == nil {
			r.recorded.Add(uint64(len(batch)))
			return
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	r.failed.Add(uint64(len(batch)))
	if r.abort.Err() == nil { // an abandoned final flush is logged once, by Close
		r.o.Logger.Error("selfaudit: appending self-audit events failed", "events", len(batch), "err", err)
	}
}
