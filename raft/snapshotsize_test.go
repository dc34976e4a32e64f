package raft

import (
	"fmt"
	"testing"
	"time"
)

// TestSnapshotBySize: a node snapshots once SnapshotBytes of log were
// applied, however few entries that took (hashicorp/raft's own entry
// threshold is far away), and the next snapshot then waits until as many
// bytes were applied as that snapshot held, so that snapshots of a large
// ledger do not copy it after every SnapshotBytes. (At start a node reads
// the size of its newest snapshot from the snapshot store, which this
// test checks agrees with the FSM's figure.)
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
	c.eventually(5*time.Second, "the snapshot's size", func() bool { return tn.node.fsm.lastSnapshotSize.Load() > 0 })
	size := tn.node.fsm.lastSnapshotSize.Load()
	if size <= 64<<10 {
		t.Fatalf("snapshot of %d bytes for ~160 KB of entries", size)
	}
	if due := tn.node.snapshotDue(); due != size {
		t.Fatalf("next snapshot due after %d bytes, want the last snapshot's %d (more than SnapshotBytes)", due, size)
	}
	snaps, _ := tn.node.snaps.List()
	if got := uint64(snaps[0].Size); got != size {
		t.Fatalf("snapshot store says %d bytes, the FSM %d", got, size)
	}
}

func TestSnapshotDueAtLeastSnapshotBytes(t *testing.T) {
	for _, tc := range []struct{ cfg, last, want uint64 }{
		{1 << 30, 0, 1 << 30},
		{1 << 30, 5 << 30, 5 << 30},
		{1 << 30, 1 << 20, 1 << 30},
	} {
		n := &Node{cfg: Config{SnapshotBytes: tc.cfg}, fsm: &FSM{}}
		n.fsm.lastSnapshotSize.Store(tc.last)
		if got := n.snapshotDue(); got != tc.want {
			t.Errorf("SnapshotBytes %d, last snapshot %d: due at %d, want %d", tc.cfg, tc.last, got, tc.want)
		}
	}
}
