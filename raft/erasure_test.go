package raft

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
)

// crypterOn is a node's field encryption over its own store, writing key
// state through Raft like ledgerd does.
func crypterOn(t testing.TB, tn *testNode, master []byte) *fieldcrypt.Crypter {
	t.Helper()
	mk, err := fieldcrypt.NewMasterKeys(master)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fieldcrypt.New(fieldcrypt.Options{Master: mk, Store: tn.store, Commit: tn.node.Committer(), Logger: testLogger(), Watch: tn.node.ObserveKV})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// appendEncrypted encrypts evs with c (as the ledger's Transform does)
// and appends them on tn. Append validates what Transform's output
// skips, so searchable values go in as their text (a leaf round trip),
// not in the binary Transform hands a ledger: the leaves are the same.
func appendEncrypted(t testing.TB, tn *testNode, c *fieldcrypt.Crypter, evs []ledger.Event) []ledger.AppendResult {
	t.Helper()
	enc, err := c.Transform(evs)
	if err != nil {
		t.Fatalf("encrypt on %s: %v", tn.id, err)
	}
	for i := range enc {
		ent, err := ledger.DecodeLeaf(ledger.EncodeLeaf(&ledger.Entry{Event: enc[i]}))
		if err != nil {
			t.Fatal(err)
		}
		enc[i] = ent.Event
	}
	return appendOn(t, tn, enc)
}

func personal(id, subject string) ledger.Event {
	return ledger.Event{
		ID:     id,
		Actor:  ledger.Actor{ID: subject, Type: "user", IP: "192.0.2.7"},
		Action: ledger.Action{Type: "read", Resource: "doc", ResourceID: id, Result: "success", Metadata: map[string]string{"password": "pw-" + subject}},
	}
}

// actorOn reads the actor id of entry index on tn through c.
func actorOn(t testing.TB, tn *testNode, c *fieldcrypt.Crypter, index uint64) string {
	t.Helper()
	leaf, err := tn.store.Leaf(index)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	c.Reveal(&e.Event, true)
	return e.Event.Actor.ID
}

// TestErasureReplicated: a data subject erased through one follower is
// erased on every node (their key caches included), on a follower that
// was cut off and catches up by snapshot, and on a node that joins
// later from a snapshot; proofs and roots are unchanged by it.
func TestErasureReplicated(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 20
		cfg.SnapshotInterval = 20 * time.Millisecond
		cfg.TrailingLogs = 5
		// One-event entries are small: tiny segments, so that the log is
		// truncated past the cut-off follower (raft-wal drops whole
		// segments) and it must catch up by snapshot.
		cfg.WALSegmentSize = 2 << 10
	})
	master := make([]byte, 32)
	rand.Read(master)
	leader := c.waitLeader()
	fs := c.followers()
	lagger, writer := fs[0], fs[1]
	crypters := map[string]*fieldcrypt.Crypter{}
	for _, tn := range c.nodes {
		crypters[tn.id] = crypterOn(t, tn, master)
	}

	// Keys and events written through a follower (forwarded to the leader).
	res := appendEncrypted(t, writer, crypters[writer.id], []ledger.Event{personal("p1", "sam"), personal("p2", "tess"), personal("p3", "sam")})
	c.converge(3)
	for _, tn := range c.nodes {
		if got := actorOn(t, tn, crypters[tn.id], res[0].Index); got != "sam" { // fills every node's cache
			t.Fatalf("%s reads %q before the erasure", tn.id, got)
		}
	}
	rootBefore := leader.store.State().Root

	for _, o := range c.nodes {
		if o != lagger {
			c.cut(lagger, o)
		}
	}
	ids, err := crypters[writer.id].Erase(context.Background(), "sam", "erasure-event-1")
	if err != nil || len(ids) != 1 {
		t.Fatalf("erase through %s: %v, %v", writer.id, ids, err)
	}
	// Enough entries for a snapshot and a compacted log.
	size := uint64(3)
	for i := 0; i < 60; i++ {
		appendEncrypted(t, leader, crypters[leader.id], []ledger.Event{personal(fmt.Sprintf("f%d", i), "tess")})
		size++
	}
	c.eventually(10*time.Second, "a snapshot on the leader", func() bool {
		return leader.node.raft.Stats()["last_snapshot_index"] != "0"
	})
	for i := 0; i < 30; i++ {
		appendEncrypted(t, leader, crypters[leader.id], []ledger.Event{personal(fmt.Sprintf("g%d", i), "tess")})
		size++
	}
	for _, tn := range []*testNode{leader, writer} {
		c.eventually(5*time.Second, "the erasure on "+tn.id, func() bool {
			return actorOn(t, tn, crypters[tn.id], res[0].Index) == fieldcrypt.Erased
		})
	}
	if got := actorOn(t, lagger, crypters[lagger.id], res[0].Index); got != "sam" {
		t.Fatalf("the cut-off follower reads %q before it catches up", got)
	}

	for _, o := range c.nodes {
		if o != lagger {
			c.heal(lagger, o)
		}
	}
	c.converge(size)
	// The store publishes its restored state before the FSM counts the
	// restore: wait for the count rather than read it once.
	c.eventually(5*time.Second, "the lagging follower's snapshot restore", func() bool { return lagger.node.fsm.restores.Load() > 0 })
	n4 := c.add("n4")
	c.join(n4, leader)
	c.converge(size)
	c.eventually(5*time.Second, "the new node's snapshot restore", func() bool { return n4.node.fsm.restores.Load() > 0 })
	crypters[n4.id] = crypterOn(t, n4, master)
	for _, tn := range c.live() {
		cr := crypters[tn.id]
		for _, ix := range []uint64{res[0].Index, res[2].Index} {
			if got := actorOn(t, tn, cr, ix); got != fieldcrypt.Erased {
				t.Errorf("%s: sam's entry %d reads %q", tn.id, ix, got)
			}
		}
		if got := actorOn(t, tn, cr, res[1].Index); got != "tess" {
			t.Errorf("%s: tess's entry reads %q", tn.id, got)
		}
		if r, err := tn.store.RootAt(3); err != nil || r != rootBefore {
			t.Errorf("%s: root at size 3 changed: %v %v", tn.id, r, err)
		}
	}
	c.sameRootsAtEverySize()
	// A new event of the erased subject gets a new key, readable everywhere.
	r := appendEncrypted(t, n4, crypters[n4.id], []ledger.Event{personal("after", "sam")})
	c.converge(size + 1)
	for _, tn := range c.live() {
		if got := actorOn(t, tn, crypters[tn.id], r[0].Index); got != "sam" {
			t.Errorf("%s reads the post-erasure event as %q", tn.id, got)
		}
	}
}
