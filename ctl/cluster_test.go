package ctl

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/node"
	"github.com/auditledger/ledgerd/raft"
)

func TestClusterTokenHeader(t *testing.T) {
	if clusterTokenHeader != raft.TokenHeader {
		t.Fatalf("ctl sends %q, raft reads %q", clusterTokenHeader, raft.TokenHeader)
	}
}

// startClusterNode starts an in-process ledgerd in cluster mode on
// loopback: bootstrap when join is empty.
func startClusterNode(t *testing.T, id, join string) (*node.Node, string) {
	t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Security.Banner = io.Discard
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "test.example/cluster"
	cfg.Cluster = node.ClusterConfig{
		NodeID: id, RaftAddr: "127.0.0.1:0", Bootstrap: join == "", Join: join,
		HeartbeatTimeout: node.Duration(200 * time.Millisecond), ElectionTimeout: node.Duration(200 * time.Millisecond),
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return n, cfg.DataDir
}

type clusterStatusOut struct {
	Leader     string            `json:"leader"`
	Healthy    bool              `json:"healthy"`
	Nodes      []clusterNodeJSON `json:"nodes"`
	Divergence []string          `json:"divergence"`
}

// TestClusterCommands drives "cluster status" and "cluster remove"
// against two real nodes: status lists both with the same root, a write
// through the follower is forwarded, remove takes the follower out, and
// removing the last voter is refused.
func TestClusterCommands(t *testing.T) {
	n1, dir1 := startClusterNode(t, "n1", "")
	defer n1.Close(context.Background())
	tok, err := os.ReadFile(filepath.Join(dir1, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := startClusterNode(t, "n2", n1.GRPCAddr())
	stopped := false
	defer func() {
		if !stopped {
			n2.Close(context.Background())
		}
	}()
	ctl := func(addr string, args ...string) result {
		return runCtl("", append([]string{"--addr", addr, "--token", strings.TrimSpace(string(tok))}, args...)...)
	}

	if r := ctl(n2.GRPCAddr(), "append", "--event", oneLine(t, seedEvent)); r.code != 0 {
		t.Fatalf("append via follower: %v", r)
	}
	var st clusterStatusOut
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ctl(n2.GRPCAddr(), "cluster", "status", "--check")
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status output: %v: %v", err, r)
		}
		// Sizes may exceed 1: self-audit appends events of its own.
		if r.code == 0 && len(st.Nodes) == 2 && st.Nodes[0].TreeSize >= 1 && st.Nodes[0].TreeSize == st.Nodes[1].TreeSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster never healthy with both nodes at one size: %v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Leader != "n1" || st.Nodes[0].ID != "n1" || st.Nodes[1].ID != "n2" || string(st.Nodes[0].Root) != string(st.Nodes[1].Root) {
		t.Fatalf("status: %+v", st)
	}

	if r := ctl(n2.GRPCAddr(), "cluster", "remove", "n2"); r.code != 0 {
		t.Fatalf("remove n2: %v", r)
	}
	n2.Close(context.Background())
	stopped = true
	r := ctl(n1.GRPCAddr(), "cluster", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Nodes) != 1 {
		t.Fatalf("status after remove: %v", r)
	}
	r = ctl(n1.GRPCAddr(), "cluster", "remove", "n1")
	if r.code != 2 || !strings.Contains(r.stderr, "last voter") {
		t.Fatalf("remove last voter: %v", r)
	}
	r = ctl(n1.GRPCAddr(), "cluster", "remove", "n9")
	if r.code != 2 || !strings.Contains(r.stderr, "no such member") {
		t.Fatalf("remove unknown node: %v", r)
	}
}
