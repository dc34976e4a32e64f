package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

const clusterOrigin = "cluster.test/log"

type clusterProc struct {
	id, dataDir, grpcAddr, raftAddr string
	extra                           []string // --bootstrap or --join
	token                           *string  // admin bearer token, read from n1's data dir
	cmd                             *exec.Cmd
	log                             *bytes.Buffer
	exited                          chan struct{}
	ledger                          pb.LedgerClient
	cluster                         pb.ClusterClient
}

func (n *clusterProc) start(t *testing.T, bin string) {
	t.Helper()
	var log bytes.Buffer
	args := append([]string{
		"--node-id", n.id, "--raft-addr", n.raftAddr,
		"--data-dir", n.dataDir, "--grpc-addr", n.grpcAddr, "--http-addr", "127.0.0.1:0",
		"--origin", clusterOrigin,
		"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms",
	}, n.extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.cmd, n.log, n.exited = cmd, &log, exited
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	conn, err := grpc.NewClient(n.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if n.token != nil && *n.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*n.token)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.ledger, n.cluster = pb.NewLedgerClient(conn), pb.NewClusterClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n.token != nil && *n.token == "" {
			if b, err := os.ReadFile(filepath.Join(n.dataDir, "admin.token")); err == nil {
				*n.token = strings.TrimSpace(string(b))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := n.ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("node %s exited: %v; log:\n%s", n.id, cmd.ProcessState, &log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready: %v; log:\n%s", n.id, err, &log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *clusterProc) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n.exited
}

// op is one client operation in the history: the ids it carried, when
// it started and ended, and what the cluster answered.
type op struct {
	ids        []string
	start, end time.Time
	indexes    []uint64 // set when acknowledged
	err        error    // the last error when never acknowledged
}

// history is what every client recorded, checked after the run in the
// manner of etcd's robustness tests.
type history struct {
	mu          sync.Mutex
	ops         []*op
	checkpoints [][]byte
}

func (h *history) acked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.ops {
		n += len(o.indexes)
	}
	return n
}

// load runs clients against all nodes until ctx ends. Each client sends
// batches with fresh ids to the nodes in turn; on an error it retries
// the same batch (same ids) on the next node until it is acknowledged
// or the run ends.
func load(ctx context.Context, nodes []*clusterProc, phase string, h *history) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := w
			for i := 0; ctx.Err() == nil; i++ {
				evs := make([]*pb.Event, 1+(i%4)*10)
				o := &op{start: time.Now()}
				for j := range evs {
					id := fmt.Sprintf("%s-w%d-%d-%d", phase, w, i, j)
					o.ids = append(o.ids, id)
					evs[j] = &pb.Event{Id: id, Actor: &pb.Actor{Id: fmt.Sprintf("user-%d", w)}, Action: &pb.Action{Type: "write", Resource: "doc", Result: "success"}}
				}
				for try := 0; ; try++ {
					n := nodes[target%len(nodes)]
					cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					r, err := n.ledger.AppendBatch(cctx, &pb.AppendBatchRequest{Events: evs, WaitCheckpoint: i%5 == 0})
					cancel()
					if err == nil {
						o.end = time.Now()
						for _, res := range r.Results {
							o.indexes = append(o.indexes, res.Index)
						}
						h.mu.Lock()
						if r.Checkpoint != nil {
							h.checkpoints = append(h.checkpoints, r.Checkpoint.Note)
						}
						h.mu.Unlock()
						break
					}
					o.err = err
					target++
					if ctx.Err() != nil && try > 0 {
						break // the run is over: outcome unknown
					}
					time.Sleep(20 * time.Millisecond)
				}
				h.mu.Lock()
				h.ops = append(h.ops, o)
				h.mu.Unlock()
			}
		}()
	}
	return &wg
}

// leaderOf asks a live node who leads.
func leaderOf(t *testing.T, nodes []*clusterProc, alive func(*clusterProc) bool) *clusterProc {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if !alive(n) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := n.cluster.NodeStatus(ctx, &pb.ClusterNodeStatusRequest{})
			cancel()
			if err == nil && st.LeaderId != "" {
				for _, l := range nodes {
					if l.id == st.LeaderId && alive(l) {
						return l
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// TestClusterKill9 runs three ledgerd processes on loopback, appends
// from several clients through all of them, kills the leader with
// SIGKILL mid-load and restarts it, then does the same to a follower.
// Afterwards every acknowledged event is on every node exactly once at
// its acknowledged index, all nodes hold the same size and root, every
// checkpoint served during the run is consistent with the final tree,
// and acknowledged operations are ordered as they happened.
func TestClusterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three ledgerd processes")
	}
	tmp := t.TempDir()
	bin := buildLedgerd(t, tmp)
	nodes := make([]*clusterProc, 3)
	token := new(string) // the initial admin token n1 writes on bootstrap
	for i := range nodes {
		nodes[i] = &clusterProc{
			id: fmt.Sprintf("n%d", i+1), dataDir: filepath.Join(tmp, fmt.Sprintf("n%d", i+1)),
			grpcAddr: freeAddr(t), raftAddr: freeAddr(t), token: token,
		}
	}
	nodes[0].extra = []string{"--bootstrap"}
	nodes[0].start(t, bin)
	for _, n := range nodes[1:] {
		n.extra = []string{"--join", nodes[0].grpcAddr}
		n.start(t, bin)
	}
	dead := map[*clusterProc]bool{}
	alive := func(n *clusterProc) bool { return !dead[n] }

	h := &history{}
	for _, kind := range []string{"leader", "follower"} {
		ctx, stop := context.WithCancel(context.Background())
		wg := load(ctx, nodes, kind, h)
		before := h.acked()
		waitFor(t, 20*time.Second, "load before the kill", func() bool { return h.acked() >= before+1500 })
		victim := leaderOf(t, nodes, alive)
		if kind == "follower" {
			for _, n := range nodes {
				if n != victim {
					victim = n
					break
				}
			}
		}
		t.Logf("kill -9 %s (%s) after %d acknowledged events", victim.id, kind, h.acked())
		victim.kill(t)
		dead[victim] = true
		mid := h.acked()
		waitFor(t, 30*time.Second, "load to go on without the "+kind, func() bool { return h.acked() >= mid+1000 })
		victim.start(t, bin)
		dead[victim] = false
		after := h.acked()
		waitFor(t, 30*time.Second, "load with the restarted "+kind, func() bool { return h.acked() >= after+500 })
		stop()
		wg.Wait()
	}
	checkCluster(t, nodes, h)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkCluster(t *testing.T, nodes []*clusterProc, h *history) {
	t.Helper()
	bg := context.Background()
	acked, unknown := 0, 0
	for _, o := range h.ops {
		if o.indexes != nil {
			acked += len(o.ids)
		} else {
			unknown += len(o.ids)
		}
	}
	t.Logf("history: %d operations, %d events acknowledged, %d with unknown outcome, %d checkpoints", len(h.ops), acked, unknown, len(h.checkpoints))

	// All nodes converge on one size and root.
	var final *ledger.Checkpoint
	var v note.Verifier
	waitFor(t, 30*time.Second, "all nodes at the same size and root", func() bool {
		var cps []*ledger.Checkpoint
		for _, n := range nodes {
			r, err := n.ledger.GetCheckpoint(bg, &pb.GetCheckpointRequest{})
			if err != nil {
				return false
			}
			if v == nil {
				if v, err = note.NewVerifier(r.VerifierKey); err != nil {
					t.Fatal(err)
				}
			}
			cp, err := ledger.OpenCheckpoint(r.Checkpoint.Note, v, clusterOrigin)
			if err != nil {
				t.Fatalf("node %s: %v", n.id, err)
			}
			cps = append(cps, cp)
		}
		for _, cp := range cps[1:] {
			if cp.Size != cps[0].Size {
				return false
			}
			if cp.Root != cps[0].Root {
				t.Fatalf("DIVERGENCE: same size %d, different roots", cp.Size)
			}
			if !bytes.Equal(cp.Note, cps[0].Note) {
				t.Fatalf("nodes serve different checkpoint notes for size %d", cp.Size)
			}
		}
		final = cps[0]
		return true
	})

	// On every node: each id once; each acknowledged id at its index.
	for _, n := range nodes {
		ids := make(map[string]uint64, final.Size)
		for start := uint64(0); start < final.Size; {
			r, err := n.ledger.GetEntries(bg, &pb.GetEntriesRequest{StartIndex: start, Count: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				if prev, dup := ids[e.Event.Id]; dup {
					t.Fatalf("node %s: id %s stored twice (indices %d and %d)", n.id, e.Event.Id, prev, e.Index)
				}
				ids[e.Event.Id] = e.Index
			}
			start += uint64(len(r.Entries))
		}
		for _, o := range h.ops {
			for i, id := range o.ids {
				idx, ok := ids[id]
				if o.indexes == nil {
					continue // unknown outcome: present at most once (checked above)
				}
				if !ok {
					t.Fatalf("node %s: acknowledged event %s (index %d) lost", n.id, id, o.indexes[i])
				}
				if idx != o.indexes[i] {
					t.Fatalf("node %s: event %s acknowledged at %d, stored at %d", n.id, id, o.indexes[i], idx)
				}
			}
		}
	}

	// Real-time order: an operation acknowledged before another started
	// holds only smaller indexes.
	var done []*op
	for _, o := range h.ops {
		if o.indexes != nil {
			done = append(done, o)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].end.Before(done[j].end) })
	prefixMax := make([]uint64, len(done))
	for i, o := range done {
		m := maxIndex(o.indexes)
		if i > 0 && prefixMax[i-1] > m {
			m = prefixMax[i-1]
		}
		prefixMax[i] = m
	}
	for _, o := range done {
		k := sort.Search(len(done), func(i int) bool { return !done[i].end.Before(o.start) })
		if k > 0 && prefixMax[k-1] >= minIndex(o.indexes) {
			t.Fatalf("operation %v started after operations holding index %d ended, yet got index %d", o.ids[0], prefixMax[k-1], minIndex(o.indexes))
		}
	}

	// Every checkpoint served during the run is consistent with the final tree.
	for _, msg := range h.checkpoints {
		old, err := ledger.OpenCheckpoint(msg, v, clusterOrigin)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := nodes[0].ledger.GetConsistencyProof(bg, &pb.GetConsistencyProofRequest{FromSize: old.Size, ToSize: final.Size})
		if err != nil {
			t.Fatal(err)
		}
		proof := make([]merkle.Hash, len(cp.Proof.Hashes))
		for i, hh := range cp.Proof.Hashes {
			proof[i], _ = merkle.HashFromBytes(hh)
		}
		if err := merkle.VerifyConsistency(old.Size, final.Size, proof, old.Root, final.Root); err != nil {
			t.Fatalf("checkpoint of size %d is not consistent with the final one: %v", old.Size, err)
		}
	}
}

func maxIndex(xs []uint64) uint64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func minIndex(xs []uint64) uint64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}
