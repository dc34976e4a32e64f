package node_test

import (
	"context"
	"testing"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/node"
)

// TestClusterStopWithoutQuorum: a member stopped after the other two
// are gone, with self-audit events still buffered, gives up on their
// final flush (it cannot commit) and stops cleanly, instead of waiting
// out its whole shutdown deadline and failing.
func TestClusterStopWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	n1cfg := clusterMember(t, "n1", "", true)
	n1 := startSecure(t, t.TempDir(), func(c *node.Config) {
		n1cfg(c)
		c.Security.SelfAudit.FlushInterval = node.Duration(time.Hour) // keep reads buffered
	})
	deadline := time.Now().Add(20 * time.Second)
	for !n1.n.Cluster().IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("n1 never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n2 := startSecure(t, t.TempDir(), clusterMember(t, "n2", n1.n.GRPCAddr(), false))
	n3 := startSecure(t, t.TempDir(), clusterMember(t, "n3", n1.n.GRPCAddr(), false))
	ctx := context.Background()
	api := pb.NewLedgerClient(n1.conn(n1.admin))
	r, err := api.Append(ctx, &pb.AppendRequest{Event: &pb.Event{Id: "before", Actor: &pb.Actor{Id: "svc"}, Action: &pb.Action{Type: "write", Resource: "doc", Result: "success"}}})
	if err != nil {
		t.Fatal(err)
	}
	n2.stop()
	n3.stop()
	// Reads still work on n1 (from its applied state) and each one is a
	// self-audit event that now waits in the buffer.
	for range 3 {
		if _, err := api.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: r.Result.Index}}); err != nil {
			t.Fatal(err)
		}
	}
	rec := n1.n.SelfAudit()
	cctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	err = n1.n.Close(cctx)
	n1.n = nil
	if err != nil {
		t.Fatalf("stopping a member without quorum: %v", err)
	}
	if st := rec.Stats(); st.Failed == 0 {
		t.Fatalf("self-audit stats after the stop: %+v; want the buffered reads counted as failed", st)
	}
}
