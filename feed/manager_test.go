package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/auditledger/ledgerd/feed/feedtest"
)

// recordingSink records what it acknowledged; fail decides, per call,
// what goes wrong (nil: nothing).
type recordingSink struct {
	mu     sync.Mutex
	got    []uint64 // acknowledged indices, in order
	calls  int
	fail   func(call int, batch []*Item) error
	closed atomic.Bool
}

func (s *recordingSink) Deliver(ctx context.Context, batch []*Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var err error
	if s.fail != nil {
		err = s.fail(s.calls, batch)
	}
	failed := map[int]bool{}
	switch e := err.(type) {
	case nil:
	case *PartialError:
		for _, f := range e.Failed {
			failed[f.Pos] = true
		}
	default:
		return err
	}
	for i, it := range batch {
		if !failed[i] {
			s.got = append(s.got, it.Index)
		}
	}
	return err
}

func (s *recordingSink) Close() error { s.closed.Store(true); return nil }

func (s *recordingSink) acked() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.got...)
}

// fastDelivery keeps retries quick for tests.
func fastDelivery(name string) Delivery {
	return Delivery{Name: name, BatchSize: 100, MinBackoff: Duration(time.Millisecond), MaxBackoff: Duration(5 * time.Millisecond), AlertAfter: Duration(time.Hour)}
}

func newManager(t *testing.T, l *feedtest.Ledger, reg prometheus.Registerer, isLeader func() bool, specs ...SinkSpec) *Manager {
	t.Helper()
	m, err := NewManager(ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer(), Sinks: specs, IsLeader: isLeader, LeaderPoll: 5 * time.Millisecond, Registerer: reg, Seed: 1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// checkComplete asserts every index below n was acknowledged, and that
// order is kept across batches: retries of failed items may come after
// later items of their own batch (at most batchSize apart), never later.
func checkComplete(t *testing.T, got []uint64, n uint64) {
	t.Helper()
	checkCompleteWithin(t, got, n, 100)
}

// checkCompleteWithin is checkComplete where a retry may come up to
// window entries after later ones.
func checkCompleteWithin(t *testing.T, got []uint64, n, window uint64) {
	t.Helper()
	batchSize := window
	seen := make([]bool, n)
	distinct := uint64(0)
	var maxSeen uint64
	for _, i := range got {
		if i >= n {
			t.Fatalf("index %d beyond %d", i, n)
		}
		if !seen[i] {
			if maxSeen >= i+batchSize {
				t.Fatalf("index %d first acknowledged after %d", i, maxSeen)
			}
			seen[i] = true
			distinct++
		}
		maxSeen = max(maxSeen, i)
	}
	if distinct != n {
		t.Fatalf("acknowledged %d distinct entries, want %d", distinct, n)
	}
}

func cursorOf(t *testing.T, l *feedtest.Ledger, name string) uint64 {
	c, _, err := ReadCursor(l.Store, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestManagerDeliversThroughFailures(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 1000, 250)
	sink := &recordingSink{fail: func(call int, batch []*Item) error {
		switch call % 5 {
		case 1:
			return fmt.Errorf("receiver down")
		case 3: // every third item fails
			pe := &PartialError{}
			for i := 0; i < len(batch); i += 3 {
				pe.Failed = append(pe.Failed, ItemError{Pos: i, Err: fmt.Errorf("busy")})
			}
			return pe
		}
		return nil
	}}
	reg := prometheus.NewPedanticRegistry()
	m := newManager(t, l, reg, nil, SinkSpec{Type: "test", Delivery: fastDelivery("s1"), Sink: sink})
	go l.Append(t, "e", 1000, 1500, 100)
	feedtest.WaitFor(t, 30*time.Second, func() string { return fmt.Sprintf("cursor %d", cursorOf(t, l, "s1")) },
		func() bool { return cursorOf(t, l, "s1") == 2500 })
	got := sink.acked()
	checkComplete(t, got, 2500)
	if len(got) != 2500 {
		t.Errorf("%d acknowledgements for 2500 entries: a retry resent acknowledged items", len(got))
	}
	if v := value(t, m.metrics.delivered.WithLabelValues("s1")); v != 2500 {
		t.Errorf("ledger_sink_delivered_total = %v, want 2500", v)
	}
	if v := value(t, m.metrics.failed.WithLabelValues("s1")); v == 0 {
		t.Errorf("ledger_sink_failed_total = 0 after failures")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lag := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "ledger_sink_lag_events" && len(mf.Metric) == 1 {
			lag = mf.Metric[0].GetGauge().GetValue()
		}
	}
	if lag != 0 {
		t.Errorf("ledger_sink_lag_events = %v, want one series at 0", lag)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Cursor != 2500 || st[0].LagEvents != 0 || !st[0].Running || st[0].LastError == "" {
		t.Errorf("status %+v", st)
	}
	if !m.Healthy() {
		t.Error("not healthy after recovering")
	}
}

// Restarting the manager (as a restart of ledgerd does) resumes from the
// cursor: nothing is lost, and duplicates are limited to one batch.
func TestManagerResumesFromCursor(t *testing.T) {
	dir, keys := t.TempDir(), feedtest.NewKeys(t)
	l := feedtest.Open(t, dir, keys)
	l.Append(t, "e", 0, 3000, 500)
	var all []uint64
	for round := 0; round < 3; round++ {
		var calls atomic.Int32
		stop := make(chan struct{})
		// The 4th batch fails as we stop: it was in flight.
		blocking := &recordingSink{fail: func(call int, batch []*Item) error {
			if calls.Add(1) == 4 {
				close(stop)
				return fmt.Errorf("in flight when stopped")
			}
			return nil
		}}
		m := newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: fastDelivery("s"), Sink: blocking})
		select {
		case <-stop:
		case <-time.After(30 * time.Second):
			t.Fatal("sink not called 4 times")
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !blocking.closed.Load() {
			t.Error("Close did not close the sink")
		}
		all = append(all, blocking.acked()...)
		l.Close()
		l = feedtest.Open(t, dir, keys)
	}
	// Finish the delivery.
	sink := &recordingSink{}
	newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: fastDelivery("s"), Sink: sink})
	feedtest.WaitFor(t, 30*time.Second, func() string { return "cursor behind" }, func() bool { return cursorOf(t, l, "s") == 3000 })
	all = append(all, sink.acked()...)
	checkComplete(t, all, 3000)
	if dups := len(all) - 3000; dups > 3*100 {
		t.Errorf("%d duplicates over 3 restarts; at most one batch (100) each", dups)
	}
}

func TestManagerLeadership(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 100, 100)
	var leader atomic.Bool
	sink := &recordingSink{}
	m := newManager(t, l, nil, leader.Load, SinkSpec{Type: "test", Delivery: fastDelivery("s"), Sink: sink})
	// Not leading: nothing delivered, status shows the replicated cursor.
	time.Sleep(50 * time.Millisecond) // give a wrongly started runner time to deliver
	if n := len(sink.acked()); n != 0 {
		t.Fatalf("a follower delivered %d entries", n)
	}
	if st := m.Status(); st[0].Running || st[0].LagEvents != 100 {
		t.Fatalf("follower status %+v", st[0])
	}
	leader.Store(true)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not delivered" }, func() bool { return cursorOf(t, l, "s") == 100 })
	leader.Store(false)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "still running" }, func() bool { return !m.Status()[0].Running })
	l.Append(t, "e", 100, 50, 50)
	time.Sleep(50 * time.Millisecond)
	if c := cursorOf(t, l, "s"); c != 100 {
		t.Fatalf("cursor moved to %d while not leading", c)
	}
	leader.Store(true)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not resumed" }, func() bool { return cursorOf(t, l, "s") == 150 })
	checkComplete(t, sink.acked(), 150)
}

func TestManagerAlertAndRecovery(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 10, 10)
	var broken atomic.Bool
	broken.Store(true)
	sink := &recordingSink{fail: func(int, []*Item) error {
		if broken.Load() {
			return fmt.Errorf("connection refused")
		}
		return nil
	}}
	d := fastDelivery("s")
	d.AlertAfter = Duration(20 * time.Millisecond)
	reg := prometheus.NewRegistry()
	m := newManager(t, l, reg, nil, SinkSpec{Type: "test", Delivery: d, Sink: sink})
	if !m.Configured() {
		t.Fatal("not configured")
	}
	feedtest.WaitFor(t, 10*time.Second, func() string { return "no alert" }, func() bool {
		return !m.Healthy() && value(t, m.metrics.alerting.WithLabelValues("s")) == 1
	})
	st := m.Status()[0]
	if !st.Alerting || st.LastError == "" || st.FailingSince.IsZero() || st.LagEvents != 10 {
		t.Errorf("status while failing: %+v", st)
	}
	// Appends go on while the sink fails.
	l.Append(t, "e", 10, 10, 10)
	broken.Store(false)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not recovered" }, func() bool {
		return m.Healthy() && cursorOf(t, l, "s") == 20
	})
	if v := value(t, m.metrics.alerting.WithLabelValues("s")); v != 0 {
		t.Errorf("alerting = %v after recovery", v)
	}
}

func TestManagerDeadLetter(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 300, 100)
	rejectSome := func(call int, batch []*Item) error {
		pe := &PartialError{}
		for i, it := range batch {
			if it.Index%50 == 7 {
				pe.Failed = append(pe.Failed, ItemError{Pos: i, Err: fmt.Errorf("mapper_parsing_exception: %w", ErrRejected)})
			}
		}
		if len(pe.Failed) == 0 {
			return nil
		}
		return pe
	}
	d := fastDelivery("dl")
	d.DeadLetterFile = filepath.Join(t.TempDir(), "dead.ndjson")
	sink := &recordingSink{fail: rejectSome}
	m := newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: d, Sink: sink})
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not delivered" }, func() bool { return cursorOf(t, l, "dl") == 300 })
	f, err := os.Open(d.DeadLetterFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var idx []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Sink   string
			Error  string
			Record Record
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if line.Sink != "dl" || line.Record.Leaf == "" || line.Error == "" {
			t.Errorf("dead letter %s", sc.Bytes())
		}
		idx = append(idx, line.Record.Index)
	}
	if fmt.Sprint(idx) != "[7 57 107 157 207 257]" {
		t.Errorf("dead letters %v", idx)
	}
	if st := m.Status()[0]; st.DeadLettered != 6 || st.Delivered != 294 {
		t.Errorf("status %+v", st)
	}

	// Without a dead-letter file, a rejected entry holds the sink back.
	d2 := fastDelivery("stuck")
	sink2 := &recordingSink{fail: rejectSome}
	m2 := newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: d2, Sink: sink2})
	feedtest.WaitFor(t, 10*time.Second, func() string { return "no error" }, func() bool { return m2.Status()[0].LastError != "" })
	time.Sleep(20 * time.Millisecond)
	if c := cursorOf(t, l, "stuck"); c > 7 {
		t.Errorf("cursor %d moved past a rejected entry without a dead-letter file", c)
	}
}

func TestManagerStartFromLatest(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 40, 40)
	d := fastDelivery("late")
	d.StartFrom = "latest"
	sink := &recordingSink{}
	newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: d, Sink: sink})
	feedtest.WaitFor(t, 10*time.Second, func() string { return "no cursor" }, func() bool { return cursorOf(t, l, "late") == 40 })
	l.Append(t, "e", 40, 5, 5)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not delivered" }, func() bool { return cursorOf(t, l, "late") == 45 })
	if got := fmt.Sprint(sink.acked()); got != "[40 41 42 43 44]" {
		t.Errorf("delivered %s", got)
	}
}

func TestManagerConfigErrors(t *testing.T) {
	l := feedtest.New(t)
	s := &recordingSink{}
	tests := []struct {
		name  string
		specs []SinkSpec
	}{
		{"no name", []SinkSpec{{Sink: s}}},
		{"bad name", []SinkSpec{{Delivery: Delivery{Name: "a/b"}, Sink: s}}},
		{"duplicate", []SinkSpec{{Delivery: Delivery{Name: "a"}, Sink: s}, {Delivery: Delivery{Name: "a"}, Sink: s}}},
		{"bad startFrom", []SinkSpec{{Delivery: Delivery{Name: "a", StartFrom: "middle"}, Sink: s}}},
		{"no sink", []SinkSpec{{Delivery: Delivery{Name: "a"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewManager(ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer(), Sinks: tc.specs, Logger: quietLogger()})
			if err == nil {
				m.Close(context.Background())
				t.Fatal("no error")
			}
		})
	}
	// No sinks: not configured, not healthy ("streamed" false).
	m, err := NewManager(ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if m.Configured() || m.Healthy() || len(m.Status()) != 0 {
		t.Error("manager without sinks claims sinks")
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// value reads a counter or gauge.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// pipeSink is a recordingSink that pipelines: Send queues the batch for
// one worker that delivers in send order (as Kafka keeps each
// partition's order) and returns a wait for the outcome.
type pipeSink struct {
	*recordingSink
	work        chan func()
	done        chan struct{}
	inFlight    atomic.Int64 // sent, not yet waited for
	maxInFlight atomic.Int64
}

func newPipeSink(rs *recordingSink) *pipeSink {
	p := &pipeSink{recordingSink: rs, work: make(chan func(), 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for f := range p.work {
			f()
		}
	}()
	return p
}

func (p *pipeSink) Send(ctx context.Context, batch []*Item) func() error {
	if n := p.inFlight.Add(1); n > p.maxInFlight.Load() {
		p.maxInFlight.Store(n)
	}
	res := make(chan error, 1)
	p.work <- func() { res <- p.recordingSink.Deliver(ctx, batch) }
	return func() error {
		defer p.inFlight.Add(-1)
		select {
		case err := <-res:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *pipeSink) Close() error {
	close(p.work)
	<-p.done
	return p.recordingSink.Close()
}

// With InFlight > 1 a Pipeliner has several batches in flight; through
// whole and partial failures every entry is acknowledged, none twice,
// and the cursor ends at the end.
func TestManagerPipelines(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 1000, 250)
	sink := newPipeSink(&recordingSink{fail: func(call int, batch []*Item) error {
		switch call % 7 {
		case 2:
			return fmt.Errorf("receiver down")
		case 5: // every third item fails
			pe := &PartialError{}
			for i := 0; i < len(batch); i += 3 {
				pe.Failed = append(pe.Failed, ItemError{Pos: i, Err: fmt.Errorf("busy")})
			}
			return pe
		}
		return nil
	}})
	d := fastDelivery("p1")
	d.InFlight = 4
	m := newManager(t, l, nil, nil, SinkSpec{Type: "test", Delivery: d, Sink: sink})
	go l.Append(t, "e", 1000, 1500, 100)
	feedtest.WaitFor(t, 30*time.Second, func() string { return fmt.Sprintf("cursor %d", cursorOf(t, l, "p1")) },
		func() bool { return cursorOf(t, l, "p1") == 2500 })
	got := sink.acked()
	checkCompleteWithin(t, got, 2500, uint64(d.InFlight*d.BatchSize))
	if len(got) != 2500 {
		t.Errorf("%d acknowledgements for 2500 entries: a retry resent acknowledged items", len(got))
	}
	if n := sink.maxInFlight.Load(); n > int64(d.InFlight) {
		t.Errorf("%d batches in flight, more than InFlight %d", n, d.InFlight)
	}
	if st := m.Status(); st[0].Cursor != 2500 || st[0].Delivered != 2500 || st[0].LastError == "" {
		t.Errorf("status %+v", st)
	}
	t.Logf("at most %d batches were in flight", sink.maxInFlight.Load())
}
