package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildLedgerd compiles this command once per test run.
func buildLedgerd(t *testing.T, _ string) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "ledgerd-bin-"); binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "ledgerd"), ".")
		cmd.Stderr = os.Stderr
		binErr = cmd.Run()
	})
	if binErr != nil {
		t.Fatalf("build ledgerd: %v", binErr)
	}
	return filepath.Join(binDir, "ledgerd")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startLedgerd(t *testing.T, bin, dataDir, addr string) *proc {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(bin, "--data-dir", dataDir, "--grpc-addr", addr, "--http-addr", "127.0.0.1:0", "--origin", "crash.test/log")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd, &log}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	return p
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// adminToken waits for the token ledgerd writes on its first start.
func adminToken(t *testing.T, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, "admin.token")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin token in %s: %v", path, err)
		}
	}
}

// dial connects to the ledgerd serving dataDir, as its admin, once it
// answers.
func dial(t *testing.T, addr, dataDir string) pb.LedgerClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(adminToken(t, dataDir))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := pb.NewLedgerClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledgerd at %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type acked struct {
	id    string
	index uint64
	leaf  []byte
}

// TestKill9LosesNothingAcknowledged runs ledgerd as a process, appends
// from several clients, kills it with SIGKILL mid-load and restarts it:
// every acknowledged event must be there exactly once, at the index it
// was acknowledged with, and the tree must be consistent with every
// checkpoint served before the kill.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ledgerd")
	}
	tmp := t.TempDir()
	bin := buildLedgerd(t, tmp)
	dataDir := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	p := startLedgerd(t, bin, dataDir, addr)
	c := dial(t, addr, dataDir)

	ctx, stop := context.WithCancel(context.Background())
	var (
		mu          sync.Mutex
		history     []acked
		checkpoints [][]byte
		wg          sync.WaitGroup
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				evs := make([]*pb.Event, 1+(i%3)*20)
				// A new data subject per call: its data key is created
				// with the call, and must survive with it.
				for j := range evs {
					evs[j] = &pb.Event{
						Id:     fmt.Sprintf("w%d-%d-%d", w, i, j),
						Actor:  &pb.Actor{Id: fmt.Sprintf("user-%d-%d", w, i)},
						Action: &pb.Action{Type: "read", Resource: "doc", Result: "success"},
					}
				}
				r, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs, WaitCheckpoint: i%5 == 0})
				if err != nil {
					return // the server died: unacknowledged
				}
				mu.Lock()
				for _, res := range r.Results {
					history = append(history, acked{res.Id, res.Index, res.LeafHash})
				}
				if r.Checkpoint != nil {
					checkpoints = append(checkpoints, r.Checkpoint.Note)
				}
				mu.Unlock()
			}
		}()
	}
	// Let load build up, then kill -9 in the middle of it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(history)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	stop()
	wg.Wait()
	if len(history) == 0 {
		t.Fatalf("nothing was acknowledged before the kill; log:\n%s", p.log)
	}
	t.Logf("%d events acknowledged, %d checkpoints seen before kill -9", len(history), len(checkpoints))

	startLedgerd(t, bin, dataDir, addr)
	c = dial(t, addr, dataDir)
	bg := context.Background()
	gc, err := c.GetCheckpoint(bg, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(gc.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	final, err := ledger.OpenCheckpoint(gc.Checkpoint.Note, v, "crash.test/log")
	if err != nil {
		t.Fatal(err)
	}

	// Every acknowledged event is present, once, where it was acknowledged.
	ids := make(map[string]uint64)
	for start := uint64(0); start < final.Size; {
		r, err := c.GetEntries(bg, &pb.GetEntriesRequest{StartIndex: start, Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Entries {
			if prev, dup := ids[e.Event.Id]; dup {
				t.Fatalf("id %s stored twice (indices %d and %d)", e.Event.Id, prev, e.Index)
			}
			ids[e.Event.Id] = e.Index
			var w, i, j int
			if _, err := fmt.Sscanf(e.Event.Id, "w%d-%d-%d", &w, &i, &j); err != nil {
				continue // not one of ours: the server's self-audit
			}
			if want := fmt.Sprintf("user-%d-%d", w, i); e.Event.Actor.GetId() != want {
				t.Fatalf("entry %d (%s): actor reads %q after the restart, want %q (its data key lost?)", e.Index, e.Event.Id, e.Event.Actor.GetId(), want)
			}
		}
		start += uint64(len(r.Entries))
	}
	for _, a := range history {
		idx, ok := ids[a.id]
		if !ok {
			t.Fatalf("acknowledged event %s (index %d) lost", a.id, a.index)
		}
		if idx != a.index {
			t.Fatalf("event %s acknowledged at %d, stored at %d", a.id, a.index, idx)
		}
	}
	// The tree only grew: each checkpoint served before the kill is
	// consistent with the one after.
	for _, msg := range checkpoints {
		old, err := ledger.OpenCheckpoint(msg, v, "crash.test/log")
		if err != nil {
			t.Fatal(err)
		}
		cp, err := c.GetConsistencyProof(bg, &pb.GetConsistencyProofRequest{FromSize: old.Size, ToSize: final.Size})
		if err != nil {
			t.Fatal(err)
		}
		proof := make([]merkle.Hash, len(cp.Proof.Hashes))
		for i, h := range cp.Proof.Hashes {
			proof[i], _ = merkle.HashFromBytes(h)
		}
		if err := merkle.VerifyConsistency(old.Size, final.Size, proof, old.Root, final.Root); err != nil {
			t.Fatalf("checkpoint of size %d is not consistent with the final one: %v", old.Size, err)
		}
	}
	// And an idempotent retry after the restart appends nothing.
	retry, err := c.AppendBatch(bg, &pb.AppendBatchRequest{Events: []*pb.Event{{Id: history[0].id, Actor: &pb.Actor{Id: "x"}, Action: &pb.Action{Type: "read", Resource: "doc", Result: "success"}}}})
	if err != nil || !retry.Results[0].Duplicate || retry.Results[0].Index != history[0].index {
		t.Fatalf("retry after restart: %v %v", retry, err)
	}
}
