package raft

import (
	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg       prometheus.Registerer
	cs        []prometheus.Collector
	forwarded prometheus.Counter
	retries   prometheus.Counter
	checks    *prometheus.CounterVec
}

func newMetrics(n *Node, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledgerd_cluster_forwarded_batches_total",
			Help: "Batches this follower forwarded to the leader.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledgerd_cluster_write_retries_total",
			Help: "Write attempts retried because no leader could take them (elections, failover).",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledgerd_cluster_divergence_checks_total",
			Help: "Root comparisons with the other nodes, by result (ok, mismatch, error).",
		}, []string{"result"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.cs = []prometheus.Collector{
		m.forwarded, m.retries, m.checks,
		gauge("ledgerd_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
			return float64(n.raft.State())
		}),
		gauge("ledgerd_raft_is_leader", "1 on the leader.", func() float64 {
			if n.raft.State() == hraft.Leader {
				return 1
			}
			return 0
		}),
		gauge("ledgerd_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("ledgerd_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("ledgerd_raft_applied_index", "Raft applied index.", func() float64 { return float64(n.raft.AppliedIndex()) }),
		gauge("ledgerd_cluster_diverged", "1 when this node found another holding a different root at the same tree size.", func() float64 {
			if n.divergence.Load() != nil {
				return 1
			}
			return 0
		}),
		gauge("ledgerd_raft_fsm_failed", "1 when the state machine stopped on a log entry it could not apply.", func() float64 {
			if n.fsm.Err() != nil {
				return 1
			}
			return 0
		}),
	}
	for i, c := range m.cs {
		if err := reg.Register(c); err != nil {
			for _, c := range m.cs[:i] {
				reg.Unregister(c)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
