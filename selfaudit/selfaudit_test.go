package selfaudit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/ledger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLedger records appended batches; fail makes the next appends fail.
type fakeLedger struct {
	mu      sync.Mutex
	batches [][]ledger.Event
	fail    int
	block   chan struct{}
}

func (f *fakeLedger) Append(ctx context.Context, evs []ledger.Event) ([]ledger.AppendResult, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("no leader")
	}
	f.batches = append(f.batches, append([]ledger.Event(nil), evs...))
	return make([]ledger.AppendResult, len(evs)), nil
}

func (f *fakeLedger) events() []ledger.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.Event
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var viewer = &auth.Principal{ID: "token:0123456789abcdef", Name: "dash", Kind: auth.KindToken, Roles: []auth.Role{auth.RoleViewer}}

func TestRecordBatchesAndFlush(t *testing.T) {
	fl := &fakeLedger{fail: 1} // the first append fails once and is retried
	r := New(Options{Appender: fl, FlushInterval: time.Hour, MaxBatch: 50, Logger: quiet()})
	for i := 0; i < 120; i++ {
		r.Record(viewer, auth.Access{Action: auth.AuditAccess, Resource: "entries", ResourceID: "from 0", Method: "/ledger.v1.Ledger/GetEntries", Result: "success", Client: "127.0.0.1:5000", Duration: 3 * time.Millisecond})
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := fl.events()
	if len(evs) != 120 {
		t.Fatalf("%d events appended, want 120", len(evs))
	}
	for _, b := range fl.batches {
		if len(b) > 50 {
			t.Fatalf("a batch of %d events; MaxBatch is 50", len(b))
		}
	}
	e := evs[0]
	if e.ID == "" || e.Actor.ID != viewer.ID || e.Actor.Type != "token" || e.Actor.IP != "127.0.0.1" ||
		e.Action.Type != auth.AuditAccess || e.Action.Resource != "entries" || e.Action.Result != "success" || e.Action.Duration != 3 ||
		e.Action.Metadata["roles"] != "audit_viewer" || e.Action.Metadata["principalName"] != "dash" || e.Context.Application != "ledgerd" {
		t.Fatalf("event %+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("a self-audit event does not validate: %v", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Recorded != 120 || s.Dropped != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	r.Record(viewer, auth.Access{Action: "x", Result: "success"}) // after Close: dropped, no panic
	if r.Stats().Dropped != 1 {
		t.Fatal("a record after Close was not counted as dropped")
	}
}

func TestFullBufferDropsInsteadOfBlocking(t *testing.T) {
	fl := &fakeLedger{block: make(chan struct{})}
	r := New(Options{Appender: fl, FlushInterval: time.Millisecond, MaxBatch: 1, Buffer: 4, Logger: quiet()})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			r.Record(viewer, auth.Access{Action: auth.AuditAccess, Result: "success"})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a full buffer")
	}
	if r.Stats().Dropped == 0 {
		t.Fatal("nothing dropped with a stuck ledger and a buffer of 4")
	}
	close(fl.block)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := r.Stats()
	if s.Recorded+s.Dropped != 100 {
		t.Fatalf("stats %+v: recorded + dropped != 100", s)
	}
}

func TestCloseFlushes(t *testing.T) {
	fl := &fakeLedger{}
	r := New(Options{Appender: fl, FlushInterval: time.Hour, Logger: quiet()})
	r.Record(nil, auth.Access{Action: auth.AuditTokens, Result: "denied"})
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := fl.events()
	if len(evs) != 1 || evs[0].Actor.ID != "anonymous" || evs[0].Action.Result != "denied" {
		t.Fatalf("after Close: %+v", evs)
	}
}

// TestCloseGivesUpOnAStuckFlush: when the ledger cannot commit (a cluster
// node without quorum), Close abandons the final flush after
// CloseTimeout, counts and logs what it dropped, and returns nil, well
// before its own deadline.
func TestCloseGivesUpOnAStuckFlush(t *testing.T) {
	var logged syncBuffer
	f := &fakeLedger{block: make(chan struct{})} // never released
	r := New(Options{Appender: f, FlushInterval: time.Hour, MaxBatch: 2, CloseTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	for range 5 {
		r.Record(viewer, auth.Access{Method: "/ledger.v1.Ledger/GetEntry", Action: "read", Result: "success"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Close used up its whole deadline")
	}
	if st := r.Stats(); st.Failed != 5 || st.Recorded != 0 {
		t.Fatalf("stats after an abandoned flush: %+v, want 5 failed", st)
	}
	if !strings.Contains(logged.String(), "dropped=5") {
		t.Fatalf("log does not count the dropped events:\n%s", logged.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
