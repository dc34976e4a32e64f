package raft

import (
	"context"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// TestJoinBeforeFirstElection: a join sent to a node that was just
// bootstrapped, before it won its first election, waits for the election
// and succeeds (it used to fail at the join's deadline: the member waited
// for a leader other than itself).
func TestJoinBeforeFirstElection(t *testing.T) {
	c := &testCluster{t: t, keys: newClusterKeys(t), base: t.TempDir(), opts: func(cfg *Config) {
		// The first election takes at least a heartbeat timeout: long
		// enough for the join to arrive before it.
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.LeaderLeaseTimeout = time.Second
		cfg.ApplyTimeout = 2 * time.Second
	}}
	t.Cleanup(c.close)
	n1, n2 := c.add("n1"), c.add("n2")
	if err := n1.node.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	if n1.node.Leader() != "" {
		t.Skip("n1 won its election before the join was sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n2.node.Join(ctx, n1.lis.Addr().String()); err != nil {
		t.Fatalf("join before the first election: %v", err)
	}
	servers, err := n1.node.configuration()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			voters++
		}
	}
	if voters != 2 {
		t.Fatalf("configuration after join: %v", servers)
	}
	appendOn(t, n2, events("after-join", 3))
}
