package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/node"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// clusterMember is the fixed configuration of one member, so it can be
// restarted on the same addresses.
func clusterMember(t *testing.T, id, join string, bootstrap bool) func(*node.Config) {
	grpcAddr, raftAddr := freeAddr(t), freeAddr(t)
	return func(c *node.Config) {
		c.GRPCAddr = grpcAddr
		c.Origin = "secure.test/cluster"
		c.Cluster = node.ClusterConfig{NodeID: id, RaftAddr: raftAddr, Bootstrap: bootstrap, Join: join,
			HeartbeatTimeout: node.Duration(200 * time.Millisecond), ElectionTimeout: node.Duration(200 * time.Millisecond)}
	}
}

// TestErasureOnCluster: on a 3-node cluster, tokens made on one node
// work on all; an erasure asked of a follower reads "[erased]" on every
// node, also after a member restarts.
func TestErasureOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	n1 := startSecure(t, t.TempDir(), clusterMember(t, "n1", "", true))
	deadline := time.Now().Add(20 * time.Second)
	for !n1.n.Cluster().IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("n1 never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n1.admin == "" {
		t.Fatal("the bootstrapping node wrote no admin token")
	}
	n2cfg := clusterMember(t, "n2", n1.n.GRPCAddr(), false)
	n2dir := t.TempDir()
	n2 := startSecure(t, n2dir, n2cfg)
	n3 := startSecure(t, t.TempDir(), clusterMember(t, "n3", n1.n.GRPCAddr(), false))
	for _, sn := range []*secureNode{n2, n3} {
		sn.admin = n1.admin // tokens are replicated; only the bootstrap node writes the file
		if sn.banner.String() != "" {
			t.Errorf("%s printed an admin token", sn.n.Cluster().RaftAddr())
		}
	}
	ctx := context.Background()

	// A token created on a follower works at once on that follower.
	ingest, _ := n2.createToken(auth.RoleIngest, "")
	r, err := pb.NewLedgerClient(n2.conn(ingest)).AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{seedEvent("zoe@example.com"), seedEvent("yan@example.com")}, WaitCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	zoe, yan := r.Results[0].Index, r.Results[1].Index

	readActor := func(sn *secureNode, ix uint64) string {
		t.Helper()
		for {
			e, err := pb.NewLedgerClient(sn.conn(sn.admin)).GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: ix}})
			if err == nil {
				return e.Entry.Event.Actor.Id
			}
			if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
				t.Fatalf("read %d: %v", ix, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for _, sn := range []*secureNode{n1, n2, n3} {
		if got := readActor(sn, zoe); got != "zoe@example.com" {
			t.Fatalf("before erasure: %q", got)
		}
	}
	er, err := pb.NewAdminClient(n3.conn(n3.admin)).Erase(ctx, &pb.EraseRequest{Subject: "zoe@example.com", Reason: "right to erasure"})
	if err != nil || er.KeysDestroyed != 1 {
		t.Fatalf("erase through a follower: %v, %v", er, err)
	}
	if got := readActor(n3, zoe); got != fieldcrypt.Erased {
		t.Fatalf("the node that erased reads %q right after", got)
	}
	for _, sn := range []*secureNode{n1, n2, n3} {
		for {
			got := readActor(sn, zoe)
			if got == fieldcrypt.Erased {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a member still reads %q", got)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := readActor(sn, yan); got != "yan@example.com" {
			t.Fatalf("another subject reads %q", got)
		}
	}

	// Cluster status is for admins; the node-to-node methods are not
	// open to API tokens.
	viewer, _ := n2.createToken(auth.RoleViewer, "") // made where it is used: replication to other members lags
	if _, err := pb.NewClusterClient(n2.conn(viewer)).Status(ctx, &pb.ClusterStatusRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("viewer cluster status: %v", err)
	}
	if st, err := pb.NewClusterClient(n2.conn(n2.admin)).Status(ctx, &pb.ClusterStatusRequest{}); err != nil || len(st.Nodes) != 3 {
		t.Errorf("admin cluster status: %v, %v", st, err)
	}

	n2.stop()
	n2 = startSecure(t, n2dir, func(c *node.Config) { n2cfg(c); c.Cluster.Join = "" })
	n2.admin = n1.admin
	deadline = time.Now().Add(20 * time.Second)
	if got := readActor(n2, zoe); got != fieldcrypt.Erased {
		t.Fatalf("after restart the member reads %q", got)
	}
	if got := readActor(n2, er.Event.Index); got == "" {
		t.Fatal("the erasure event is missing after restart")
	}
	for _, sn := range []*secureNode{n1, n2, n3} {
		scanLogs(t, sn, []string{ingest, "zoe@example.com"})
	}
}
