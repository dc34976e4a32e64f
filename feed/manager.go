package feed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/ledgerd/ledger"
)

// Store is what the sink runners need of *ledger.Store: the Log they
// read, Leaf for lag in seconds, and Get for their replicated cursors.
type Store interface {
	Log
	Leaf(index uint64) ([]byte, error)
	Get(key []byte) ([]byte, error)
}

// KVCommitter replicates cursor writes; ledger.Committer is one.
type KVCommitter interface {
	CommitKV(ctx context.Context, ops []ledger.KV) error
}

// SinkSpec is one configured sink.
type SinkSpec struct {
	Type     string // "kafka", "elasticsearch", "splunk", "webhook", ...
	Delivery Delivery
	Sink     Sink
}

// ManagerConfig configures a Manager. Store and Committer are required.
type ManagerConfig struct {
	Store     Store
	Committer KVCommitter
	Sinks     []SinkSpec

	// IsLeader reports whether this node may run sinks. nil means always
	// (a single node). It is checked every LeaderPoll (default 250ms)
	// and before every delivery attempt.
	IsLeader   func() bool
	LeaderPoll time.Duration
	// Barrier, when set, is called before a runner reads its cursor: on
	// a new leader it waits until everything the old leader committed
	// (its last cursor writes) is applied, so fewer entries are sent
	// twice. Raft's read barrier is one.
	Barrier func(ctx context.Context) error

	// Registerer receives the sink metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock of status and alerts (default time.Now).
	Now func() time.Time
	// Seed seeds the backoff jitter (default: from the clock). Logged.
	Seed uint64
}

// Manager runs one runner per enabled sink while this node is the
// leader. Each runner reads the feed from its sink's durable cursor,
// delivers batches, retries with exponential backoff and jitter, and
// commits the cursor (ledger.KV under "f/cursor/<name>", the next index
// to deliver, 8 bytes big-endian) after each delivered batch. A new
// leader's runners resume from the replicated cursor: delivery is
// at-least-once, with duplicates only within the batch that was in
// flight. Appends never wait for sinks.
//
// NewManager starts a supervising goroutine and Close stops it, the
// runners and the sinks. Methods are safe for concurrent use.
type Manager struct {
	cfg     ManagerConfig
	log     *slog.Logger
	runners []*runner
	metrics *metrics

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// CursorKey is the replicated key holding a sink's cursor.
func CursorKey(name string) []byte { return []byte("f/cursor/" + name) }

// ReadCursor returns the next index to deliver to sink name, and false
// when the sink has no cursor yet.
func ReadCursor(s interface{ Get([]byte) ([]byte, error) }, name string) (uint64, bool, error) {
	v, err := s.Get(CursorKey(name))
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("feed: read cursor of %s: %w", name, err)
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: cursor of %s is %d bytes", ledger.ErrCorrupt, name, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// NewManager validates the sinks and starts the supervisor.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Store == nil || cfg.Committer == nil {
		return nil, errors.New("feed: ManagerConfig needs Store and Committer")
	}
	if cfg.LeaderPoll <= 0 {
		cfg.LeaderPoll = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "feed"), stop: make(chan struct{})}
	names := map[string]bool{}
	for i, s := range cfg.Sinks {
		d := s.Delivery
		if err := d.Validate(); err != nil {
			return nil, err
		}
		if names[d.Name] {
			return nil, fmt.Errorf("%w: two sinks named %q", ErrConfig, d.Name)
		}
		names[d.Name] = true
		if d.Disabled {
			continue
		}
		if s.Sink == nil {
			return nil, fmt.Errorf("%w: sink %s has no implementation", ErrConfig, d.Name)
		}
		m.runners = append(m.runners, newRunner(m, s, cfg.Seed+uint64(i)))
	}
	m.metrics = newMetrics(m)
	if cfg.Registerer != nil {
		if err := m.metrics.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	if len(m.runners) > 0 {
		m.log.Info("sinks configured", "sinks", len(m.runners), "seed", cfg.Seed)
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.supervise() }()
	return m, nil
}

func (m *Manager) isLeader() bool { return m.cfg.IsLeader == nil || m.cfg.IsLeader() }

// supervise starts the runners when this node becomes the leader and
// stops them when it no longer is.
func (m *Manager) supervise() {
	if len(m.runners) == 0 {
		<-m.stop
		return
	}
	t := time.NewTicker(m.cfg.LeaderPoll)
	defer t.Stop()
	var rwg sync.WaitGroup
	var cancel context.CancelFunc
	stopRunners := func() {
		if cancel != nil {
			cancel()
			rwg.Wait()
			cancel = nil
		}
	}
	defer stopRunners()
	for {
		leader := m.isLeader()
		switch {
		case leader && cancel == nil:
			m.log.Info("starting sinks: this node leads")
			cancel = m.startRunners(&rwg)
		case !leader && cancel != nil:
			m.log.Info("stopping sinks: this node no longer leads")
			stopRunners()
		}
		select {
		case <-t.C:
		case <-m.stop:
			return
		}
	}
}

func (m *Manager) startRunners(wg *sync.WaitGroup) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	for _, r := range m.runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.loop(ctx) }()
	}
	return cancel
}

// Close stops the runners (a delivery in flight is abandoned; its batch
// is delivered again from the cursor) and closes the sinks.
func (m *Manager) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		close(m.stop)
		done := make(chan struct{})
		go func() { m.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("feed: close: %w", ctx.Err())
			return
		}
		for _, r := range m.runners {
			if cerr := r.close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		if m.cfg.Registerer != nil {
			m.metrics.unregister(m.cfg.Registerer)
		}
	})
	return err
}

// Configured reports whether any sink is enabled.
func (m *Manager) Configured() bool { return m != nil && len(m.runners) > 0 }

// Healthy reports whether sinks are configured and none is alerting
// (failing for longer than its AlertAfter). It is the append response's
// "streamed" field. On a follower, which runs no sinks, it reports
// whether sinks are configured.
func (m *Manager) Healthy() bool {
	if !m.Configured() {
		return false
	}
	for _, r := range m.runners {
		if r.alertingNow() {
			return false
		}
	}
	return true
}

// Status is the state of one sink.
type Status struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Running bool   `json:"running"` // this node runs it (it leads)
	// Cursor is the next index to deliver: every entry below it was
	// acknowledged by the receiver.
	Cursor       uint64    `json:"cursor"`
	TreeSize     uint64    `json:"treeSize"`
	LagEvents    uint64    `json:"lagEvents"`
	LagSeconds   float64   `json:"lagSeconds"` // age of the oldest undelivered entry
	Delivered    uint64    `json:"delivered"`  // since this process started
	Failed       uint64    `json:"failed"`     // items in failed attempts, since start
	DeadLettered uint64    `json:"deadLettered"`
	LastError    string    `json:"lastError,omitempty"`
	LastErrorAt  time.Time `json:"lastErrorAt,omitzero"`
	FailingSince time.Time `json:"failingSince,omitzero"`
	Alerting     bool      `json:"alerting"`
	LastDelivery time.Time `json:"lastDelivery,omitzero"`
}

// Status returns the state of every enabled sink, in configuration
// order. On a follower the cursor is the replicated one.
func (m *Manager) Status() []Status {
	if m == nil {
		return nil
	}
	out := make([]Status, 0, len(m.runners))
	for _, r := range m.runners {
		out = append(out, r.status())
	}
	return out
}
