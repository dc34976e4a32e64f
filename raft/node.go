package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// Config configures a Node. ID, Dir and Store are required, and either
// RaftAddr or Transport.
type Config struct {
	// ID names the node in the cluster; it never changes.
	ID string
	// Dir holds Raft's own files: the log and stable store and the
	// snapshots. The ledger's Pebble database is elsewhere (Store).
	Dir string
	// Store is the ledger state the FSM applies to.
	Store *ledger.Store

	// RaftAddr is the address the Raft transport listens on (host:port);
	// AdvertiseAddr, when set, is the address the other nodes dial.
	RaftAddr      string
	AdvertiseAddr string
	// TLS, when set, is used for mutual TLS on the Raft transport and for
	// the node-to-node gRPC calls (see TLSFiles.Load). Without it the
	// transport is plain TCP, which Open refuses off loopback unless
	// AllowPlaintext is set.
	TLS            *tls.Config
	AllowPlaintext bool
	// Transport replaces the TCP transport (tests use hraft's in-memory
	// one). The node does not close it.
	Transport hraft.Transport

	// APIAddr is this node's gRPC API address, recorded in the replicated
	// membership table: followers forward writes to the leader's.
	APIAddr string
	// Token is the shared cluster secret sent with, and required on,
	// cluster-internal calls (forwarding, join, remove). Empty: those
	// calls are accepted from loopback peers and TLS-verified peers only.
	Token string

	// LogStore is "wal" (hashicorp/raft-wal, the default) or "bolt"
	// (raft-boltdb/v2). Both fsync every append.
	LogStore string
	// WALSegmentSize is raft-wal's segment size (default 64 MiB). The log
	// is truncated by whole segments, so entries before a snapshot stay
	// readable (and are sent instead of the snapshot) until their segment
	// is dropped; tests make it small to force snapshot catch-up.
	WALSegmentSize int
	// logStore replaces both (the log store comparison benchmark).
	logStore interface {
		hraft.LogStore
		hraft.StableStore
		io.Closer
	}

	// Raft timing; zero values take hashicorp/raft's defaults (1s
	// heartbeat and election, 500ms lease) except CommitTimeout, 25ms
	// here (hashicorp/raft: 50ms): followers learn that the last entry
	// of a burst committed within one to two of it, and a follower
	// answers a forwarded write only once it applied it (read your
	// writes). Under load the next entry carries the commit at once; idle
	// it costs empty AppendEntries (measured on 3 loopback nodes: 78 ms
	// CPU a second idle at 50ms, 109 at 10ms).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// Snapshots. A snapshot is a full copy of the store (one is kept),
	// so its cost grows with the ledger while a log entry is one batch of
	// 1 to 10,000 events: a threshold in entries would snapshot a busy
	// ledger of single appends every few seconds and a batched one almost
	// never. The node therefore snapshots once the log applied since the
	// last snapshot is as large as that snapshot was, and at least
	// SnapshotBytes (default 1 GiB), checked every second: writing
	// snapshots then costs at most about one byte per byte of log, however
	// large the ledger grows (a fixed threshold would copy a 100 GiB
	// ledger after every GiB appended), and the log kept between
	// snapshots stays under the store's size. SnapshotThreshold (default
	// 2^24 entries, checked every SnapshotInterval, default 2m) is
	// hashicorp/raft's own trigger, a backstop far enough not to undo
	// that.
	// TrailingLogs entries stay in the log after a snapshot (default
	// 1024: up to 16 GiB of full batches, typically some hundred MB; a
	// follower further behind catches up by snapshot).
	SnapshotBytes     uint64
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// ApplyTimeout bounds one write, waiting for a leader included
	// (default 10s). Past it the write fails with ledger.ErrNotLeader.
	ApplyTimeout time.Duration
	// CheckInterval is how often the node compares its root with the
	// other nodes' (divergence alarm) and checks its membership row
	// (default 10s; negative turns the divergence check off).
	CheckInterval time.Duration

	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// RaftLogLevel filters hashicorp/raft's own log (default "warn").
	RaftLogLevel string
}

// Node is one member of the cluster: hashicorp/raft with the ledger FSM,
// its log store, snapshots and transport, the replicated membership
// table, forwarding of writes to the leader and the divergence alarm.
//
// Open starts it; Close stops everything Open started. All methods are
// safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	raft   *hraft.Raft
	fsm    *FSM
	trans  hraft.Transport
	logs   hraft.LogStore
	stable hraft.StableStore
	snaps  hraft.SnapshotStore
	peers  *peers

	closers []io.Closer // log store, our transport; closed after raft shuts down
	stop    chan struct{}
	// stopping is closed by Stopping: writes that find no leader fail at
	// once instead of waiting for one.
	stopping     chan struct{}
	stoppingOnce sync.Once
	wg           sync.WaitGroup
	once         sync.Once

	divergence atomic.Pointer[string]
	metrics    *metrics
}

// Open starts the node. It neither bootstraps nor joins: call Bootstrap
// on the first node of a new cluster, Join on the others (a restarted
// node needs neither; it finds its state on disk).
func Open(cfg Config) (_ *Node, err error) {
	if cfg.ID == "" || cfg.Dir == "" || cfg.Store == nil {
		return nil, errors.New("raft: Config needs ID, Dir and Store")
	}
	if cfg.RaftAddr == "" && cfg.Transport == nil {
		return nil, errors.New("raft: Config needs RaftAddr or Transport")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 10 * time.Second
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), stop: make(chan struct{}), stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			for i := len(n.closers) - 1; i >= 0; i-- {
				n.closers[i].Close()
			}
		}
	}()
	level := hclog.LevelFromString(cfg.RaftLogLevel)
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	hl := hclogFor(n.log, "raft", level)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}

	// Transport.
	if cfg.Transport != nil {
		n.trans = cfg.Transport
	} else {
		adv := cfg.AdvertiseAddr
		if adv == "" {
			adv = cfg.RaftAddr
		}
		if cfg.TLS == nil && !cfg.AllowPlaintext && !(IsLoopback(cfg.RaftAddr) && IsLoopback(adv)) {
			return nil, fmt.Errorf("raft: plain TCP on %s is only allowed on loopback; give TLS certificates or allow plaintext explicitly", adv)
		}
		sl, err := newStreamLayer(cfg.RaftAddr, cfg.AdvertiseAddr, cfg.TLS)
		if err != nil {
			return nil, err
		}
		nt := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream: sl, MaxPool: 5, Timeout: 10 * time.Second, Logger: hl,
		})
		n.trans = nt
		n.closers = append(n.closers, closerFunc(func() error {
			nt.CloseStreams() // pooled outgoing connections
			return nt.Close() // the listener and the connections it accepted
		}))
	}

	// Log and stable store.
	switch {
	case cfg.logStore != nil:
		n.logs, n.stable = cfg.logStore, cfg.logStore
		n.closers = append(n.closers, cfg.logStore)
	case cfg.LogStore == "" || cfg.LogStore == "wal":
		dir := filepath.Join(cfg.Dir, "wal")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("raft: %w", err)
		}
		seg := cfg.WALSegmentSize
		if seg <= 0 {
			seg = wal.DefaultSegmentSize
		}
		w, err := wal.Open(dir, wal.WithLogger(hl), wal.WithSegmentSize(seg))
		if err != nil {
			return nil, fmt.Errorf("raft: open log: %w", err)
		}
		n.logs, n.stable = w, w
		n.closers = append(n.closers, w)
	case cfg.LogStore == "bolt":
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
		if err != nil {
			return nil, fmt.Errorf("raft: open log: %w", err)
		}
		n.logs, n.stable = b, b
		n.closers = append(n.closers, b)
	default:
		return nil, fmt.Errorf("raft: unknown log store %q (wal or bolt)", cfg.LogStore)
	}
	// The cache serves replication of the newest entries without reading
	// the log. Entries are whole batches (up to 16 MiB) and only a few are
	// in flight, so 32 is enough and bounds what it pins in memory.
	cached, err := hraft.NewLogCache(32, n.logs)
	if err != nil {
		return nil, err
	}
	if n.snaps, err = hraft.NewFileSnapshotStoreWithLogger(cfg.Dir, 1, hl); err != nil {
		return nil, fmt.Errorf("raft: snapshot store: %w", err)
	}

	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.NoLegacyTelemetry = true
	// Batching: many proposals per AppendEntries and per fsync of the log
	// (NOTES-deps: ~15k commands/s on 3 loopback nodes, ~2k without).
	rc.BatchApplyCh = true
	// MaxAppendEntries bounds the entries of one AppendEntries RPC and of
	// one log write. An entry is a whole batch (up to 16 MiB), and the
	// ledger keeps only a few in flight per node, so 64 is plenty to
	// batch them and keeps a catch-up RPC to a lagging follower from
	// carrying gigabytes (hashicorp/raft's default is 64; it was 1024).
	rc.MaxAppendEntries = 64
	rc.CommitTimeout = 25 * time.Millisecond
	setDur(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout // hashicorp/raft requires lease <= heartbeat
	}
	setDur(&rc.CommitTimeout, cfg.CommitTimeout)
	setDur(&rc.SnapshotInterval, cfg.SnapshotInterval)
	rc.SnapshotThreshold = 1 << 24
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if n.cfg.SnapshotBytes == 0 {
		n.cfg.SnapshotBytes = 1 << 30
	}
	rc.TrailingLogs = 1024
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	n.fsm = NewFSM(cfg.Store, n.log)
	if snaps, err := n.snaps.List(); err == nil && len(snaps) > 0 {
		n.fsm.lastSnapshotSize.Store(uint64(snaps[0].Size)) // newest first
	}
	if n.raft, err = hraft.NewRaft(rc, n.fsm, cached, n.stable, n.snaps, n.trans); err != nil {
		return nil, fmt.Errorf("raft: start: %w", err)
	}
	n.peers = newPeers(cfg.ID, cfg.TLS, cfg.AllowPlaintext, cfg.Token)
	if cfg.Registerer != nil {
		if n.metrics, err = newMetrics(n, cfg.Registerer); err != nil {
			n.raft.Shutdown().Error()
			return nil, err
		}
	}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.upkeep() }()
	go func() { defer n.wg.Done(); n.snapshotBySize() }()
	n.log.Info("raft started", "raft_addr", n.trans.LocalAddr(), "api_addr", cfg.APIAddr)
	return n, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func setDur(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr returns the address other nodes dial for Raft.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// Raft exposes hashicorp/raft for status tools and tests.
func (n *Node) Raft() *hraft.Raft { return n.raft }

// HasState reports whether the node holds Raft state from an earlier run
// (it was bootstrapped or joined before).
func (n *Node) HasState() (bool, error) {
	return hraft.HasExistingState(n.logs, n.stable, n.snaps)
}

// Bootstrap makes this node a one-voter cluster. It is a no-op on a node
// that already has state, so --bootstrap can stay on across restarts.
func (n *Node) Bootstrap() error {
	has, err := n.HasState()
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	if has {
		n.log.Info("raft: existing state found; not bootstrapping")
		return nil
	}
	f := n.raft.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{{
		Suffrage: hraft.Voter, ID: hraft.ServerID(n.cfg.ID), Address: n.trans.LocalAddr(),
	}}})
	if err := f.Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return fmt.Errorf("raft: bootstrap: %w", err)
	}
	return nil
}

// Stopping tells the node that its process is shutting down: from now on
// a write that finds no leader (quorum gone, an election) fails at once
// with ledger.ErrNotLeader instead of waiting up to ApplyTimeout for one,
// so that draining the ledger's queue on shutdown cannot hang. Writes a
// leader takes still commit. Close implies it.
func (n *Node) Stopping() { n.stoppingOnce.Do(func() { close(n.stopping) }) }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the leader's id, or "" while there is none.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// WaitLeader waits until some node is the leader.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if id := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", fmt.Errorf("%w: no leader elected", ledger.ErrNotLeader)
		case <-n.stopping:
			return "", fmt.Errorf("%w: no leader, and this node is stopping", ledger.ErrNotLeader)
		case <-n.stop:
			return "", ledger.ErrClosed
		}
	}
}

// configuration returns the current Raft configuration.
func (n *Node) configuration() ([]hraft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, retryable(err)
	}
	return f.Configuration().Servers, nil
}

// Members returns the replicated membership table.
func (n *Node) Members() ([]Member, error) { return members(n.cfg.Store) }

// leaderAPI returns the leader's id and API address.
func (n *Node) leaderAPI() (id, api string, err error) {
	id = n.Leader()
	if id == "" {
		return "", "", fmt.Errorf("%w: no leader known", ledger.ErrNotLeader)
	}
	if id == n.cfg.ID {
		// Raft names us before our state says leader: try again.
		return id, "", fmt.Errorf("%w: leadership is changing", ledger.ErrNotLeader)
	}
	m, ok, err := member(n.cfg.Store, id)
	if err != nil {
		return id, "", err
	}
	if !ok || m.API == "" {
		return id, "", fmt.Errorf("%w: leader %s has no API address in the membership table yet", ledger.ErrNotLeader, id)
	}
	return id, m.API, nil
}

// addVoter adds a node (leader only) and records its addresses. A node
// that is already a member with the same id and address is a rejoin: it
// succeeds without a configuration change.
func (n *Node) addVoter(ctx context.Context, id, raftAddr, apiAddr string) error {
	if id == "" || raftAddr == "" {
		return fmt.Errorf("%w: join needs a node id and a Raft address", ledger.ErrInvalid)
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	present := false
	for _, s := range servers {
		switch {
		case string(s.ID) == id && string(s.Address) == raftAddr:
			present = true
		case string(s.ID) == id:
			return fmt.Errorf("%w: node id %q is already a member with Raft address %s; remove it first", ErrDuplicateNode, id, s.Address)
		case string(s.Address) == raftAddr:
			return fmt.Errorf("%w: Raft address %s already belongs to node %q", ErrDuplicateNode, raftAddr, s.ID)
		}
	}
	if !present {
		f := n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(raftAddr), 0, remaining(ctx, n.cfg.ApplyTimeout))
		if err := f.Error(); err != nil {
			return fmt.Errorf("raft: add voter %s: %w", id, retryable(err))
		}
		n.log.Info("raft: added voter", "id", id, "raft_addr", raftAddr, "api_addr", apiAddr)
	}
	if apiAddr != "" {
		return n.Committer().CommitKV(ctx, []ledger.KV{memberOp(Member{ID: id, Raft: raftAddr, API: apiAddr})})
	}
	return nil
}

// removeServer removes a node (leader only).
func (n *Node) removeServer(ctx context.Context, id string) error {
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	found, voters := false, 0
	var isVoter bool
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			voters++
		}
		if string(s.ID) == id {
			found, isVoter = true, s.Suffrage == hraft.Voter
		}
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	if isVoter && voters == 1 {
		return fmt.Errorf("%w: %q is the only voter", ErrLastVoter, id)
	}
	// Drop the membership row first: once the node is out it cannot
	// write it back (upkeep only writes rows of configured members).
	if err := n.Committer().CommitKV(ctx, []ledger.KV{{Key: memberKey(id), Delete: true}}); err != nil {
		return err
	}
	f := n.raft.RemoveServer(hraft.ServerID(id), 0, remaining(ctx, n.cfg.ApplyTimeout))
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft: remove %s: %w", id, retryable(err))
	}
	n.log.Info("raft: removed server", "id", id)
	return nil
}

func remaining(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if r := time.Until(d); r > 0 {
			return r
		}
		return time.Millisecond
	}
	return def
}

// upkeep keeps this node's membership row current and runs the
// divergence check, until Close.
func (n *Node) upkeep() {
	tick := n.cfg.CheckInterval
	if tick < 0 {
		tick = 10 * time.Second
	}
	// The row check is a Pebble read; it runs often so that a new leader
	// is reachable for forwarding soon after it is elected.
	rows := time.NewTicker(100 * time.Millisecond)
	defer rows.Stop()
	var check <-chan time.Time
	if n.cfg.CheckInterval > 0 {
		t := time.NewTicker(n.cfg.CheckInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case <-n.stop:
			return
		case <-rows.C:
			n.ensureRow()
		case <-check:
			ctx, cancel := context.WithTimeout(context.Background(), tick)
			n.checkDivergence(ctx)
			cancel()
		}
	}
}

// snapshotDue is how many bytes of log applied since the last snapshot
// call for the next: as many as the last snapshot held, at least
// Config.SnapshotBytes (see Config).
func (n *Node) snapshotDue() uint64 {
	return max(n.cfg.SnapshotBytes, n.fsm.lastSnapshotSize.Load())
}

// snapshotBySize takes a snapshot whenever snapshotDue bytes of log were
// applied since the last one, until Close.
func (n *Node) snapshotBySize() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		applied, due := n.fsm.sinceSnapshot.Load(), n.snapshotDue()
		if applied < due {
			continue
		}
		start := time.Now()
		if err := n.raft.Snapshot().Error(); err != nil {
			n.log.Debug("raft: snapshot by size", "err", err)
			continue
		}
		n.log.Info("raft: snapshot taken", "applied_bytes", applied, "due_at", due,
			"snapshot_bytes", n.fsm.lastSnapshotSize.Load(), "took", time.Since(start))
	}
}

// ensureRow writes this node's addresses into the membership table when
// they are missing or changed, once the node is a configured member.
func (n *Node) ensureRow() {
	if n.cfg.APIAddr == "" || n.Leader() == "" {
		return
	}
	m, ok, err := member(n.cfg.Store, n.cfg.ID)
	if err != nil || (ok && m.API == n.cfg.APIAddr && m.Raft == n.RaftAddr()) {
		return
	}
	servers, err := n.configuration()
	if err != nil {
		return
	}
	for _, s := range servers {
		if string(s.ID) == n.cfg.ID {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := n.Committer().CommitKV(ctx, []ledger.KV{memberOp(Member{ID: n.cfg.ID, Raft: n.RaftAddr(), API: n.cfg.APIAddr})})
			cancel()
			if err != nil {
				n.log.Debug("raft: membership row not written yet", "err", err)
			}
			return
		}
	}
}

// Healthy returns why the node should not serve, or nil: the FSM stopped
// on a bad entry, or the divergence alarm went off.
func (n *Node) Healthy() error {
	if err := n.fsm.Err(); err != nil {
		return err
	}
	if d := n.divergence.Load(); d != nil {
		return fmt.Errorf("%w: divergence: %s", ledger.ErrCorrupt, *d)
	}
	if n.raft.State() == hraft.Shutdown {
		return ledger.ErrClosed
	}
	return nil
}

// Close stops the node: a leader first hands leadership to another
// voter (bounded), then Raft shuts down, then the log store and the
// transport close. Close the ledger (which commits through this node)
// before, and the Store after.
func (n *Node) Close() error {
	var errs []error
	n.once.Do(func() {
		n.Stopping()
		close(n.stop)
		n.wg.Wait()
		if n.IsLeader() {
			if servers, err := n.configuration(); err == nil && voterCount(servers) > 1 {
				if err := n.raft.LeadershipTransfer().Error(); err != nil {
					n.log.Debug("raft: leadership transfer on close", "err", err)
				}
			}
		}
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
		n.peers.close()
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i].Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.metrics != nil {
			n.metrics.unregister()
		}
	})
	return errors.Join(errs...)
}

func voterCount(servers []hraft.Server) int {
	c := 0
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			c++
		}
	}
	return c
}

// LocalStatus is this node's view of itself. With rootAt in (0, size] it
// also carries the root at that size.
func (n *Node) LocalStatus(rootAt uint64) *pb.ClusterNodeStatus {
	st := n.cfg.Store.State()
	s := &pb.ClusterNodeStatus{
		NodeId:       n.cfg.ID,
		RaftAddr:     n.RaftAddr(),
		ApiAddr:      n.cfg.APIAddr,
		State:        strings.ToLower(n.raft.State().String()),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastLogIndex: n.raft.LastIndex(),
		TreeSize:     st.Size,
		RootHash:     st.Root[:],
		LeaderId:     n.Leader(),
	}
	if servers, err := n.configuration(); err == nil {
		for _, sv := range servers {
			if string(sv.ID) == n.cfg.ID {
				s.Voter = sv.Suffrage == hraft.Voter
			}
		}
	}
	if rootAt > 0 && rootAt <= st.Size {
		if root, err := n.cfg.Store.RootAt(rootAt); err == nil {
			s.RootAtSize, s.RootAt = rootAt, root[:]
		}
	}
	if d := n.divergence.Load(); d != nil {
		s.Divergence = *d
	}
	if err := n.fsm.Err(); err != nil {
		s.Error = err.Error()
	}
	return s
}
