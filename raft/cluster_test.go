package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"

	"github.com/auditledger/ledgerd/ledger"
)

func appendOn(t testing.TB, tn *testNode, evs []ledger.Event) []ledger.AppendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := tn.ledger.Append(ctx, evs)
	if err != nil {
		t.Fatalf("append on %s: %v", tn.id, err)
	}
	return res
}

// TestReplication: appends on the leader and on followers (forwarded)
// reach every node; all nodes hold the same root at every size; ids are
// exactly-once across nodes.
func TestReplication(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	size := uint64(0)
	for round := 0; round < 6; round++ {
		for i, tn := range c.nodes {
			n := 1 + (round*3+i)%17
			res := appendOn(t, tn, events(fmt.Sprintf("r%d-%s", round, tn.id), n))
			for j, r := range res {
				if r.Duplicate || r.Index != size+uint64(j) {
					t.Fatalf("append on %s: result %d = %+v, want index %d, not duplicate", tn.id, j, r, size+uint64(j))
				}
			}
			size += uint64(n)
			c.converge(size)
		}
	}
	c.sameRootsAtEverySize()

	// The same ids again, through another node: duplicates, nothing appended.
	f := c.followers()[0]
	appendOn(t, leader, events("dup", 3))
	size += 3
	c.converge(size)
	res := appendOn(t, f, events("dup", 3))
	for _, r := range res {
		if !r.Duplicate {
			t.Fatalf("re-append via follower: %+v not a duplicate", r)
		}
	}
	c.converge(size)

	// Every node signs the same checkpoint for the same size.
	var note []byte
	for _, tn := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cp, err := tn.ledger.WaitCheckpoint(ctx, size)
		cancel()
		if err != nil || cp.Size != size {
			t.Fatalf("checkpoint on %s: %v %v", tn.id, cp, err)
		}
		if note != nil && string(note) != string(cp.Note) {
			t.Fatalf("node %s serves a different checkpoint note", tn.id)
		}
		note = cp.Note
	}

	// Linearizable read on a follower sees everything committed before.
	appendOn(t, leader, events("lin", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp, err := f.node.LinearizableCheckpoint(f.ledger)(ctx)
	if err != nil || cp.Size != size+1 {
		t.Fatalf("linearizable checkpoint on follower: %v %v", cp, err)
	}

	// Reserved-table writes from a follower are replicated too.
	if err := f.node.Committer().CommitKV(ctx, []ledger.KV{{Key: []byte("f/sink"), Value: []byte("7")}}); err != nil {
		t.Fatal(err)
	}
	c.eventually(5*time.Second, "KV on every node", func() bool {
		for _, tn := range c.nodes {
			if v, err := tn.store.Get([]byte("f/sink")); err != nil || string(v) != "7" {
				return false
			}
		}
		return true
	})

	// Cluster status from a follower lists every node, healthy.
	st, err := f.node.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 3 || st.LeaderId != leader.id || len(st.Divergence) != 0 {
		t.Fatalf("status: %v", st)
	}
	for _, ns := range st.Nodes {
		if ns.State == "unreachable" || !ns.Voter || ns.ApiAddr == "" {
			t.Fatalf("status of %s: %v", ns.NodeId, ns)
		}
	}
}

// TestMembership: add a fourth node, remove one, and the bad inputs:
// duplicate node id, join to a non-cluster, remove of the last voter or
// of an unknown node.
func TestMembership(t *testing.T) {
	c := newCluster(t, 3, nil)
	appendOn(t, c.waitLeader(), events("before", 50))

	// A fourth node joins through a follower and catches up.
	n4 := c.add("n4")
	c.join(n4, c.followers()[0])
	c.converge(50)
	appendOn(t, n4, events("from-n4", 5))
	c.converge(55)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Joining again with the same id and address is a no-op rejoin.
	if _, err := n4.node.Join(ctx, c.nodes[0].lis.Addr().String()); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	// Another node claiming id n2 (at another Raft address) is refused.
	dup := c.addAt("n2", "n2-impostor")
	if _, err := dup.node.Join(ctx, c.nodes[0].lis.Addr().String()); !errors.Is(err, ErrDuplicateNode) {
		t.Fatalf("duplicate id join: %v", err)
	}
	c.stop(dup)

	// Remove n4 through a follower's API: it passes the call to the leader.
	via := c.followers()[0]
	if err := removeVia(ctx, via, "n4"); err != nil {
		t.Fatalf("remove n4: %v", err)
	}
	c.eventually(5*time.Second, "n4 out of the configuration", func() bool {
		servers, err := c.nodes[0].node.configuration()
		return err == nil && len(servers) == 3
	})
	if m, _ := c.nodes[0].node.Members(); len(m) != 3 {
		t.Fatalf("membership table after remove: %v", m)
	}
	c.stop(n4)
	if err := removeVia(ctx, via, "n4"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("remove unknown: %v", err)
	}

	// Writes go on with three.
	appendOn(t, c.nodes[1], events("after", 5))
	c.converge(60)
}

// removeVia calls Cluster.Remove on tn's API, as ledgerctl does.
func removeVia(ctx context.Context, tn *testNode, id string) error {
	conn, err := grpc.NewClient(tn.lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pb.NewClusterClient(conn).Remove(ctx, &pb.ClusterRemoveRequest{NodeId: id})
	return fromStatus(err)
}

// TestBadJoinAndRemove: join to a node that is in no cluster, to a
// server without the cluster service, and removing the last voter.
func TestBadJoinAndRemove(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The last voter cannot be removed.
	if err := c.nodes[0].node.removeServer(ctx, "n1"); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("remove last voter: %v", err)
	}

	// A node that was never bootstrapped is not a cluster.
	lone := c.add("lone")
	joiner := c.add("joiner")
	if _, err := joiner.node.Join(ctx, lone.lis.Addr().String()); !errors.Is(err, ErrNotCluster) {
		t.Fatalf("join to a non-bootstrapped node: %v", err)
	}

	// A gRPC server without the cluster service (a single-node ledgerd).
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go srv.Serve(lis)
	defer srv.Stop()
	if _, err := joiner.node.Join(ctx, lis.Addr().String()); !errors.Is(err, ErrNotCluster) {
		t.Fatalf("join to a non-cluster server: %v", err)
	}

	// Nothing listening: the join gives up at the deadline.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := joiner.node.Join(short, "127.0.0.1:1"); err == nil {
		t.Fatal("join to a closed port succeeded")
	}
}

// TestTokenRequired: with a cluster token, internal calls without it are
// refused, even from loopback.
func TestTokenRequired(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.Token = "s3cret" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	joiner := c.add("n2")
	joiner.node.peers.token = "wrong"
	if _, err := joiner.node.Join(ctx, c.nodes[0].lis.Addr().String()); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("join with a wrong token: %v", err)
	}
	joiner.node.peers.token = "s3cret"
	if _, err := joiner.node.Join(ctx, c.nodes[0].lis.Addr().String()); err != nil {
		t.Fatalf("join with the token: %v", err)
	}
	appendOn(t, joiner, events("tok", 3))
	c.converge(3)
}

// TestSnapshotCatchUp: a follower cut off while the leader compacts its
// log, and a node added later, both catch up by snapshot.
func TestSnapshotCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 20
		cfg.SnapshotInterval = 20 * time.Millisecond
		cfg.TrailingLogs = 5
		cfg.WALSegmentSize = 16 << 10
	})
	leader := c.waitLeader()
	lagger := c.followers()[0]
	for _, o := range c.nodes {
		if o != lagger {
			c.cut(lagger, o)
		}
	}
	size := uint64(0)
	for i := 0; i < 60; i++ {
		appendOn(t, leader, events(fmt.Sprintf("s%d", i), 10))
		size += 10
	}
	c.eventually(10*time.Second, "a snapshot on the leader", func() bool {
		return leader.node.raft.Stats()["last_snapshot_index"] != "0"
	})
	// Push the log past the trailing window once more after the snapshot.
	for i := 0; i < 30; i++ {
		appendOn(t, leader, events(fmt.Sprintf("t%d", i), 10))
		size += 10
	}
	// Healing may start an election (the lagger's term grew while it was
	// cut off), and either connected node may lead afterwards: both must
	// have compacted away what the lagger lacks, or it could catch up
	// from the log.
	lagLast, err := lagger.node.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range c.nodes {
		if o == lagger {
			continue
		}
		c.eventually(10*time.Second, o.id+" compacted its log past the lagger", func() bool {
			first, err := o.node.logs.FirstIndex()
			return err == nil && first > lagLast+1
		})
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
	if got := n4.node.fsm.lastSnapshotSize.Load(); got == 0 {
		t.Fatal("a node that restored a snapshot does not size its next one by it")
	}
	c.sameRootsAtEverySize()
	appendOn(t, n4, events("after", 3))
	c.converge(size + 3)
}

// TestPartition: a leader cut off from both followers cannot commit (its
// writes fail with ErrNotLeader, never succeed silently); the majority
// elects a new leader and goes on; after healing the old leader
// converges and its failed writes are not in the log.
func TestPartition(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.ApplyTimeout = time.Second })
	old := c.waitLeader()
	appendOn(t, old, events("before", 10))
	c.converge(10)
	for _, f := range c.followers() {
		c.cut(old, f)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := old.ledger.Append(ctx, events("minority", 3)); !errors.Is(err, ledger.ErrNotLeader) {
		t.Fatalf("append on the isolated leader: %v, %v; want ErrNotLeader", res, err)
	}

	var maj []*testNode
	for _, tn := range c.nodes {
		if tn != old {
			maj = append(maj, tn)
		}
	}
	c.eventually(10*time.Second, "a new leader in the majority", func() bool {
		return maj[0].node.IsLeader() || maj[1].node.IsLeader()
	})
	appendOn(t, maj[0], events("majority", 5))
	appendOn(t, maj[1], events("majority2", 5))

	for _, f := range maj {
		c.heal(old, f)
	}
	c.converge(20)
	c.sameRootsAtEverySize()
	for _, tn := range c.nodes {
		if _, err := tn.store.IndexByID("minority-0"); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("node %s holds a write the minority never committed: %v", tn.id, err)
		}
	}
	// The old leader takes writes again (forwarded).
	appendOn(t, old, events("healed", 2))
	c.converge(22)
}

// TestLeaderStop: when the leader stops, the others elect a new one and
// writes go on through either survivor.
func TestLeaderStop(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader()
	appendOn(t, old, events("a", 10))
	c.converge(10)
	c.stop(old)
	c.waitLeader()
	for _, tn := range c.live() {
		appendOn(t, tn, events("b-"+tn.id, 4))
	}
	c.converge(18)
	c.sameRootsAtEverySize()
}

// TestDivergenceAlarm: a follower whose store is changed behind Raft's
// back holds another root at the same size; the leader's check and the
// cluster status report it, and both nodes' health fails.
func TestDivergenceAlarm(t *testing.T) {
	c := newCluster(t, 2, nil)
	leader := c.waitLeader()
	f := c.followers()[0]
	appendOn(t, leader, events("same", 5))
	c.converge(5)
	eventually(t, 5*time.Second, "both membership rows on the follower", func() bool {
		m, err := f.node.Members()
		return err == nil && len(m) == 2
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader.node.checkDivergence(ctx)
	if err := leader.node.Healthy(); err != nil {
		t.Fatalf("healthy cluster: %v", err)
	}

	// Tamper: one entry applied on the follower only, under a batch
	// number Raft will use next, so that its own copy is a no-op there.
	next := f.store.State().LastApplied + 1
	if _, err := f.store.Apply(next, [][]byte{testLeaf("forged", 1)}); err != nil {
		t.Fatal(err)
	}
	appendOn(t, leader, events("real", 1))
	eventually(t, 5*time.Second, "both at size 6", func() bool {
		return leader.store.State().Size == 6 && f.store.State().Size == 6
	})
	if leader.store.State().Root == f.store.State().Root {
		t.Fatal("tampering did not change the follower's root")
	}

	st, err := leader.node.ClusterStatus(ctx)
	if err != nil || len(st.Divergence) == 0 {
		t.Fatalf("status does not report the divergence: %v %v", st, err)
	}
	leader.node.checkDivergence(ctx)
	f.node.checkDivergence(ctx)
	for _, tn := range []*testNode{leader, f} {
		if err := tn.node.Healthy(); !errors.Is(err, ledger.ErrCorrupt) {
			t.Fatalf("node %s health after divergence: %v", tn.id, err)
		}
	}
}

// TestForwardRejectsBadLeaves: the leader refuses a forwarded batch with
// a malformed leaf before it reaches its group commit, where it would
// fail other callers' appends merged into the same Store batch.
func TestForwardRejectsBadLeaves(t *testing.T) {
	c := newCluster(t, 1, nil)
	leader := c.waitLeader()
	conn, err := grpc.NewClient(leader.lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pb.NewClusterClient(conn).Forward(ctx, &pb.ClusterForwardRequest{Leaves: [][]byte{testLeaf("ok", 1), []byte("garbage")}})
	if !errors.Is(fromStatus(err), ledger.ErrInvalid) {
		t.Fatalf("forward of a malformed leaf: %v", err)
	}
	if leader.store.State().Size != 0 {
		t.Fatal("something was appended")
	}
}
