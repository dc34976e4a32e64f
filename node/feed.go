package node

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/auditledger/ledgerd/api"
	"github.com/auditledger/ledgerd/feed"
)

// startFeed builds the sinks of the config's "sinks" section, starts
// their Manager (it runs them only while this node leads the cluster;
// a single node always leads), registers the Feed gRPC service on g and
// returns the append response's "streamed" report. The Manager stops
// among the closers, before the ledger and store close.
func (n *Node) startFeed(g *grpc.Server) (streamed func() bool, err error) {
	specs, err := n.cfg.Sinks.Build()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	mc := feed.ManagerConfig{
		Store:      n.store,
		Committer:  n.ledger.Committer(),
		Sinks:      specs,
		Logger:     n.log,
		Registerer: n.Registry(),
	}
	if c := n.Cluster(); c != nil {
		mc.IsLeader = c.IsLeader
		// A new leader applies what the old one committed (its last
		// cursor writes) before its runners read their cursors.
		mc.Barrier = c.ReadBarrier
	}
	m, err := feed.NewManager(mc)
	if err != nil {
		for _, s := range specs {
			if s.Sink != nil {
				s.Sink.Close()
			}
		}
		return nil, err
	}
	n.closers = append(n.closers, func(ctx context.Context) error { return m.Close(ctx) })
	n.api.sinks = m // for /health/dependencies
	api.NewFeedService(api.FeedOptions{Log: n.store, Checkpoints: n.ledger, Sinks: m, View: n.eventView(), Logger: n.log}).Register(g)
	return m.Healthy, nil
}
