package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// getJSON calls a node's HTTP API as its admin.
func (sn *secureNode) getJSON(t *testing.T, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+sn.n.HTTPAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sn.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode
}

type clusterPage struct {
	Events []struct {
		ID    string `json:"id"`
		Index uint64 `json:"index"`
		Actor struct {
			ID string `json:"id"`
		} `json:"actor"`
	} `json:"events"`
	Total      uint64 `json:"total"`
	HasMore    bool   `json:"hasMore"`
	NextCursor string `json:"nextCursor"`
}

func (p clusterPage) indices() []uint64 {
	var out []uint64
	for _, e := range p.Events {
		out = append(out, e.Index)
	}
	return out
}

// TestQueryOnCluster: the indexes are written by every node's state
// machine, so every member answers a query alike (encrypted actor ids
// included), a cursor from one member continues on another, and
// /health/dependencies reports the Raft members.
func TestQueryOnCluster(t *testing.T) {
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
	n2 := startSecure(t, t.TempDir(), clusterMember(t, "n2", n1.n.GRPCAddr(), false))
	n3 := startSecure(t, t.TempDir(), clusterMember(t, "n3", n1.n.GRPCAddr(), false))
	n2.admin, n3.admin = n1.admin, n1.admin
	ctx := context.Background()

	// Appended through a follower (forwarded to the leader).
	var evs []*pb.Event
	for i := range 300 {
		evs = append(evs, seedEvent(fmt.Sprintf("user-%d@example.com", i%3)))
	}
	res, err := pb.NewLedgerClient(n2.conn(n2.admin)).AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	size := res.Results[len(res.Results)-1].Index + 1
	for _, sn := range []*secureNode{n1, n2, n3} {
		for sn.n.Ledger().Store().State().Size < size {
			if time.Now().After(deadline) {
				t.Fatal("a member never caught up")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	q := url.Values{"actorId": {"user-1@example.com"}, "resource": {"user_profile"}, "limit": {"40"}, "order": {"desc"}}
	var want clusterPage
	if code := n1.getJSON(t, "/api/audit/events?"+q.Encode(), &want); code != http.StatusOK || len(want.Events) != 40 || want.Total != 100 || !want.HasMore {
		t.Fatalf("leader: %d %d events, total %d", code, len(want.Events), want.Total)
	}
	if want.Events[0].Actor.ID != "user-1@example.com" {
		t.Fatalf("actor id not decrypted for the admin: %q", want.Events[0].Actor.ID)
	}
	for _, sn := range []*secureNode{n2, n3} {
		var got clusterPage
		if code := sn.getJSON(t, "/api/audit/events?"+q.Encode(), &got); code != http.StatusOK || !slices.Equal(got.indices(), want.indices()) || got.Total != want.Total {
			t.Fatalf("follower: %d %v, want %v", code, got.indices(), want.indices())
		}
	}
	// Page 2 from another member, with the leader's cursor.
	q.Set("cursor", want.NextCursor)
	var p1, p3 clusterPage
	n1.getJSON(t, "/api/audit/events?"+q.Encode(), &p1)
	if code := n3.getJSON(t, "/api/audit/events?"+q.Encode(), &p3); code != http.StatusOK || len(p3.Events) != 40 || !slices.Equal(p3.indices(), p1.indices()) {
		t.Fatalf("cursor on another member: %d %v, want %v", code, p3.indices(), p1.indices())
	}

	var deps struct {
		Status string `json:"status"`
		Raft   struct {
			Mode     string `json:"mode"`
			LeaderID string `json:"leaderId"`
			Nodes    []struct {
				NodeID string `json:"nodeId"`
				State  string `json:"state"`
			} `json:"nodes"`
		} `json:"raft"`
	}
	if code := n3.getJSON(t, "/health/dependencies", &deps); code != http.StatusOK || deps.Status != "healthy" || deps.Raft.Mode != "cluster" || deps.Raft.LeaderID != "n1" || len(deps.Raft.Nodes) != 3 {
		t.Fatalf("/health/dependencies: %d %+v", code, deps)
	}
	// Raft's own metrics are on the node's registry too.
	resp, err := http.Get("http://" + n3.n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, name := range []string{"ledgerd_raft_state", "ledgerd_raft_term", "ledgerd_raft_commit_index", "ledgerd_raft_applied_index", "ledger_tree_size"} {
		if !strings.Contains(string(body), "\n"+name+" ") {
			t.Errorf("/metrics of a cluster member has no %s", name)
		}
	}
}
