package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/kafka"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/node"
)

const failoverTopic = "audit-events"

func startFeedClusterNode(t *testing.T, id, join string, brokers []string) *node.Node {
	t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "test.example/feed-cluster"
	cfg.Security.Banner = io.Discard
	cfg.Cluster = node.ClusterConfig{
		NodeID: id, RaftAddr: "127.0.0.1:0", Bootstrap: join == "", Join: join,
		HeartbeatTimeout: node.Duration(200 * time.Millisecond), ElectionTimeout: node.Duration(200 * time.Millisecond),
	}
	cfg.Sinks.Kafka = []kafka.Config{{
		Delivery: feed.Delivery{Name: "siem", BatchSize: 200, MinBackoff: feed.Duration(5 * time.Millisecond), MaxBackoff: feed.Duration(50 * time.Millisecond)},
		Brokers:  brokers, Topic: failoverTopic,
	}}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFeedKafkaLeaderFailover runs a Kafka sink on a 3-node cluster,
// stops the leader while events are being appended and delivered, and
// checks that the new leader's sink resumes from the replicated cursor:
// every entry of the log reaches the topic.
func TestFeedKafkaLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, failoverTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := broker.ListenAddrs()

	nodes := map[string]*node.Node{}
	nodes["n1"] = startFeedClusterNode(t, "n1", "", brokers)
	nodes["n2"] = startFeedClusterNode(t, "n2", nodes["n1"].GRPCAddr(), brokers)
	nodes["n3"] = startFeedClusterNode(t, "n3", nodes["n1"].GRPCAddr(), brokers)
	var closeMu sync.Mutex
	closed := map[string]bool{}
	defer func() {
		closeMu.Lock()
		defer closeMu.Unlock()
		for id, n := range nodes {
			if !closed[id] {
				n.Close(context.Background())
			}
		}
	}()
	leader := func() string {
		for id, n := range nodes {
			closeMu.Lock()
			c := closed[id]
			closeMu.Unlock()
			if !c && n.Cluster().IsLeader() {
				return id
			}
		}
		return ""
	}
	cursor := func(id string) uint64 {
		c, _, err := feed.ReadCursor(nodes[id].Ledger().Store(), "siem")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// appendN appends n events with ids e-from.. through any live node,
	// retrying while the cluster elects a leader.
	appendN := func(from, n int) {
		for i := from; i < from+n; i += 100 {
			evs := make([]ledger.Event, 100)
			for j := range evs {
				evs[j] = feedtest.Event("e", i+j)
			}
			for try := 0; ; try++ {
				var err error
				for id, nd := range nodes {
					closeMu.Lock()
					c := closed[id]
					closeMu.Unlock()
					if c {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err = nd.Ledger().Append(ctx, evs)
					cancel()
					if err == nil {
						break
					}
				}
				if err == nil {
					break
				}
				if try > 200 {
					t.Errorf("append %d: %v", i, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	feedtest.WaitFor(t, 30*time.Second, func() string { return "no leader" }, func() bool { return leader() == "n1" })
	appendN(0, 3000)
	old := leader()
	feedtest.WaitFor(t, 60*time.Second, func() string { return fmt.Sprint("cursor ", cursor(old)) }, func() bool { return cursor(old) >= 1000 })

	// Stop the leader mid-delivery while appends go on.
	done := make(chan struct{})
	go func() { defer close(done); appendN(3000, 3000) }()
	closeMu.Lock()
	closed[old] = true
	closeMu.Unlock()
	stoppedAt := cursor(old)
	if err := nodes[old].Close(context.Background()); err != nil {
		t.Logf("close %s: %v", old, err)
	}
	<-done
	if t.Failed() {
		return
	}
	var now string
	feedtest.WaitFor(t, 30*time.Second, func() string { return "no new leader" }, func() bool { now = leader(); return now != "" })
	size := nodes[now].Ledger().Store().State().Size
	feedtest.WaitFor(t, 60*time.Second, func() string { return fmt.Sprintf("new leader %s cursor %d, size %d", now, cursor(now), size) },
		func() bool { return cursor(now) == size })
	t.Logf("leader %s stopped with the cursor at %d; %s delivered up to %d", old, stoppedAt, now, size)

	// Every entry of the log is in the topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(failoverTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[uint64]bool{}
	records := 0
	deadline := time.Now().Add(60 * time.Second)
	for uint64(len(seen)) < size && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ledger-index" {
					i, _ := strconv.ParseUint(string(h.Value), 10, 64)
					seen[i] = true
					records++
				}
			}
		})
	}
	for i := uint64(0); i < size; i++ {
		if !seen[i] {
			t.Fatalf("entry %d of %d missing from the topic", i, size)
		}
	}
	t.Logf("%d records for %d entries", records, size)
}
