package raft

import (
	"fmt"
	"testing"
	"time"
)

// TestSnapshotBySize: a node snapshots once SnapshotBytes of log were
// applied, however few entries that took (hashicorp/raft's own entry
// threshold is left at its default, far away).
func TestSnapshotBySize(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.SnapshotBytes = 64 << 10 })
	tn := c.waitLeader()
	for i := 0; i < 4; i++ {
		appendOn(t, tn, events(fmt.Sprintf("big-%d", i), 200)) // ~40 KB an entry
	}
	c.eventually(15*time.Second, "a snapshot", func() bool {
		snaps, err := tn.node.snaps.List()
		return err == nil && len(snaps) > 0
	})
	if n := tn.node.fsm.sinceSnapshot.Load(); n >= 64<<10 {
		t.Fatalf("%d bytes applied since the snapshot", n)
	}
}
