package api

import (
	"context"
	"net/http"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/ledger"
)

// ClusterHealth is what the health endpoints ask of a cluster member (a
// *raft.Node); nil on a single node.
type ClusterHealth interface {
	// Healthy says why the node should not serve, or nil.
	Healthy() error
	// ClusterStatus asks every member for its status.
	ClusterStatus(ctx context.Context) (*pb.ClusterStatusResponse, error)
}

// HealthOptions configure the health endpoints. Ledger is required.
type HealthOptions struct {
	Ledger  *ledger.Ledger
	Cluster ClusterHealth
	// Sinks are the change-feed sinks (nil: none configured).
	Sinks *feed.Manager
	// Metrics supplies the checkpoint age (nil: not reported).
	Metrics *Metrics
	NodeID  string
	Started time.Time
}

// Health answers /health, /health/detailed, /health/database and
// /health/dependencies. Each answers 200 when healthy and 503 when not,
// with a JSON body saying why.
type Health struct{ o HealthOptions }

// NewHealth returns the health endpoints' backend.
func NewHealth(o HealthOptions) *Health {
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	return &Health{o}
}

// Statuses, best first.
const (
	statusHealthy   = "healthy"
	statusDegraded  = "degraded"
	statusUnhealthy = "unhealthy"
)

func worst(a, b string) string {
	rank := map[string]int{statusHealthy: 0, "none": 0, statusDegraded: 1, statusUnhealthy: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func httpStatus(s string) int {
	if s == statusHealthy {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

type databaseJSON struct {
	Status                string  `json:"status"`
	Error                 string  `json:"error,omitempty"`
	TreeSize              uint64  `json:"treeSize"`
	LastApplied           uint64  `json:"lastApplied"`
	ReadMillis            float64 `json:"readMillis"`
	DiskUsageBytes        uint64  `json:"diskUsageBytes"`
	L0Files               int64   `json:"l0Files"`
	L0Sublevels           int32   `json:"l0Sublevels"`
	CompactionsInProgress int64   `json:"compactionsInProgress"`
}

// l0Stalled is the sublevel count past which Pebble stalls writes (its
// default L0StopWritesThreshold): reported as degraded on the way.
const l0Stalled = 12

func (h *Health) database() databaseJSON {
	st := h.o.Ledger.Store()
	sh := st.Health()
	ts := st.State()
	d := databaseJSON{Status: statusHealthy, TreeSize: ts.Size, LastApplied: ts.LastApplied,
		ReadMillis: float64(sh.ReadTime.Microseconds()) / 1000, DiskUsageBytes: sh.DiskUsageBytes,
		L0Files: sh.L0Files, L0Sublevels: sh.L0Sublevels, CompactionsInProgress: sh.CompactionsInProgress}
	switch {
	case sh.Err != nil:
		d.Status, d.Error = statusUnhealthy, "the store refuses writes after a failure: "+sh.Err.Error()
	case sh.ReadErr != nil:
		d.Status, d.Error = statusUnhealthy, "reading the newest entry failed: "+sh.ReadErr.Error()
	case sh.L0Sublevels >= l0Stalled/2:
		d.Status, d.Error = statusDegraded, "compactions are behind (L0 sublevels); writes may stall"
	}
	return d
}

type raftJSON struct {
	Status     string     `json:"status"`
	Mode       string     `json:"mode"` // single-node or cluster
	Error      string     `json:"error,omitempty"`
	LeaderID   string     `json:"leaderId,omitempty"`
	Nodes      []nodeJSON `json:"nodes,omitempty"`
	Divergence []string   `json:"divergence,omitempty"`
}

// nodeJSON is one member as /health/dependencies shows it.
type nodeJSON struct {
	NodeID       string `json:"nodeId"`
	State        string `json:"state"` // leader, follower, candidate, shutdown, unreachable
	Voter        bool   `json:"voter"`
	RaftAddr     string `json:"raftAddr,omitempty"`
	APIAddr      string `json:"apiAddr,omitempty"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	TreeSize     uint64 `json:"treeSize"`
	RootHash     []byte `json:"rootHash,omitempty"`
	Error        string `json:"error,omitempty"`
}

type dependenciesJSON struct {
	Status string           `json:"status"`
	Raft   raftJSON         `json:"raft"`
	Sinks  SinkDependencies `json:"sinks"`
}

// clusterTimeout bounds the status calls to the other members.
const clusterTimeout = 2 * time.Second

func (h *Health) dependencies(ctx context.Context) dependenciesJSON {
	d := dependenciesJSON{Status: statusHealthy, Raft: raftJSON{Status: statusHealthy, Mode: "single-node"}}
	if c := h.o.Cluster; c != nil {
		d.Raft.Mode = "cluster"
		if err := c.Healthy(); err != nil {
			d.Raft.Status, d.Raft.Error = statusUnhealthy, err.Error()
		}
		cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		cs, err := c.ClusterStatus(cctx)
		cancel()
		switch {
		case err != nil:
			d.Raft.Status = worst(d.Raft.Status, statusDegraded)
			if d.Raft.Error == "" {
				d.Raft.Error = "cluster status: " + err.Error()
			}
		default:
			d.Raft.LeaderID, d.Raft.Divergence = cs.LeaderId, cs.Divergence
			for _, n := range cs.Nodes {
				d.Raft.Nodes = append(d.Raft.Nodes, nodeJSON{n.NodeId, n.State, n.Voter, n.RaftAddr, n.ApiAddr,
					n.Term, n.CommitIndex, n.AppliedIndex, n.TreeSize, n.RootHash, n.Error})
				if n.State == "unreachable" {
					d.Raft.Status = worst(d.Raft.Status, statusDegraded)
				}
			}
			if cs.LeaderId == "" {
				d.Raft.Status, d.Raft.Error = statusUnhealthy, "no leader: writes cannot commit"
			}
			if len(cs.Divergence) > 0 {
				d.Raft.Status, d.Raft.Error = statusUnhealthy, "nodes hold different roots at the same size"
			}
		}
	}
	d.Sinks = SinksDependencies(h.o.Sinks)
	d.Status = worst(d.Raft.Status, d.Sinks.Status)
	return d
}

type ledgerJSON struct {
	Origin               string   `json:"origin"`
	TreeSize             uint64   `json:"treeSize"`
	RootHash             []byte   `json:"rootHash"`
	CheckpointSize       uint64   `json:"checkpointSize"`
	CheckpointAgeSeconds *float64 `json:"checkpointAgeSeconds,omitempty"`
}

type detailedJSON struct {
	Status        string           `json:"status"`
	NodeID        string           `json:"nodeId,omitempty"`
	UptimeSeconds float64          `json:"uptimeSeconds"`
	Ledger        ledgerJSON       `json:"ledger"`
	Database      databaseJSON     `json:"database"`
	Dependencies  dependenciesJSON `json:"dependencies"`
}

func (a *httpAPI) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *httpAPI) healthDatabase(w http.ResponseWriter, r *http.Request) {
	if a.o.Health == nil {
		writeHTTPError(w, http.StatusNotFound, "not_found", "health details are not enabled", "")
		return
	}
	d := a.o.Health.database()
	writeJSON(w, httpStatus(d.Status), d)
}

func (a *httpAPI) healthDependencies(w http.ResponseWriter, r *http.Request) {
	if a.o.Health == nil {
		writeHTTPError(w, http.StatusNotFound, "not_found", "health details are not enabled", "")
		return
	}
	d := a.o.Health.dependencies(r.Context())
	writeJSON(w, httpStatus(d.Status), d)
}

func (a *httpAPI) healthDetailed(w http.ResponseWriter, r *http.Request) {
	h := a.o.Health
	if h == nil {
		writeHTTPError(w, http.StatusNotFound, "not_found", "health details are not enabled", "")
		return
	}
	l := h.o.Ledger
	st := l.Store().State()
	cp := l.Checkpoint()
	d := detailedJSON{
		NodeID:        h.o.NodeID,
		UptimeSeconds: time.Since(h.o.Started).Seconds(),
		Ledger:        ledgerJSON{Origin: l.Origin(), TreeSize: st.Size, RootHash: st.Root[:], CheckpointSize: cp.Size},
		Database:      h.database(),
		Dependencies:  h.dependencies(r.Context()),
	}
	if h.o.Metrics != nil {
		age := h.o.Metrics.checkpointAge().Seconds()
		d.Ledger.CheckpointAgeSeconds = &age
	}
	d.Status = worst(d.Database.Status, d.Dependencies.Status)
	writeJSON(w, httpStatus(d.Status), d)
}
