package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/ledger"
)

// ledgerdProc is a ledgerd process with a Kafka sink.
type ledgerdProc struct {
	t       *testing.T
	bin     string
	dataDir string
	config  string
	addr    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	conn    *grpc.ClientConn
}

// buildLedgerd compiles cmd/ledgerd into dir.
func buildLedgerd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "ledgerd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/auditledger/ledgerd/cmd/ledgerd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ledgerd: %v\n%s", err, out)
	}
	return bin
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

func (p *ledgerdProc) start() {
	p.t.Helper()
	p.log = new(bytes.Buffer)
	p.cmd = exec.Command(p.bin, "--config", p.config, "--data-dir", p.dataDir, "--grpc-addr", p.addr,
		"--http-addr", "127.0.0.1:0", "--origin", "sink-crash.test/log")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	token := p.adminToken()
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		p.t.Fatal(err)
	}
	p.conn = conn
	p.t.Cleanup(func() { conn.Close() })
	c := pb.NewLedgerClient(conn)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("ledgerd not ready: %v\n%s", err, p.log)
		}
	}
}

// kill9 kills the process with SIGKILL: no shutdown code runs.
func (p *ledgerdProc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
	p.cmd.Wait()
	p.conn.Close()
}

func (p *ledgerdProc) adminToken() string {
	p.t.Helper()
	path := filepath.Join(p.dataDir, "admin.token")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no admin token in %s: %v\n%s", path, err, p.log)
		}
	}
}

func (p *ledgerdProc) sinkStatus() *pb.SinkStatus {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := pb.NewFeedClient(p.conn).SinksStatus(ctx, &pb.SinksStatusRequest{})
	if err != nil || len(r.Sinks) != 1 {
		p.t.Fatalf("sinks status: %v %v\n%s", r, err, p.log)
	}
	return r.Sinks[0]
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// appendLoop appends batches of 100 events (ids e-<n>, from id number
// from) until ctx ends, the server is gone or it has appended limit
// events (0: no limit); it returns the next id number.
func appendLoop(ctx context.Context, c pb.LedgerClient, from, limit int) int {
	n := from
	for ctx.Err() == nil && (limit == 0 || n < from+limit) {
		evs := make([]*pb.Event, 100)
		for j := range evs {
			evs[j] = &pb.Event{Id: fmt.Sprintf("e-%d", n+j), Actor: &pb.Actor{Id: fmt.Sprint("user-", (n+j)%17)},
				Action: &pb.Action{Type: "update", Resource: "profile", Result: "success"}}
		}
		if _, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs}); err != nil {
			return n
		}
		n += len(evs)
	}
	return n
}

// TestKafkaSinkSurvivesKill9 runs ledgerd as a process with a Kafka sink
// (kfake in this process), kills it with SIGKILL while it appends and
// delivers, and restarts it. The durable cursor found in the killed
// process's store never runs ahead of what Kafka acknowledged; after the
// restart delivery resumes from it: every entry of the log reaches the
// topic (no gap), and the only duplicates are entries of the one batch
// that was in flight at the kill (at-least-once).
func TestKafkaSinkSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ledgerd")
	}
	const batchSize = 500
	b := startBroker(t)
	tmp := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"sinks": map[string]any{"kafka": []map[string]any{{
		"name": "siem", "brokers": []string{b.addr()}, "topic": topic, "batchSize": batchSize,
		"minBackoff": "10ms", "maxBackoff": "200ms",
	}}}})
	p := &ledgerdProc{t: t, bin: buildLedgerd(t, tmp), dataDir: filepath.Join(tmp, "data"),
		config: filepath.Join(tmp, "ledgerd.json"), addr: freeAddr(t)}
	if err := os.WriteFile(p.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()

	// Appends run while the sink delivers; kill -9 once the sink is well
	// into the stream.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var appended int
	wg.Add(1)
	go func() { defer wg.Done(); appended = appendLoop(ctx, pb.NewLedgerClient(p.conn), 0, 0) }()
	waitFor := func(d time.Duration, msg func() string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("timed out after %v: %s", d, msg())
			}
		}
	}
	var st *pb.SinkStatus
	waitFor(60*time.Second, func() string { return fmt.Sprintf("sink status %v\n%s", st, p.log) }, func() bool {
		st = p.sinkStatus()
		return st.Cursor >= 3000
	})
	// The broker kills ledgerd when the next produce request arrives,
	// then stores that request's records: the kill falls between
	// Kafka's write and ledgerd's cursor commit, the worst moment.
	killed := make(chan struct{})
	b.c.ControlKey((&kmsg.ProduceRequest{}).Key(), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.c.DropControl()
		p.cmd.Process.Signal(syscall.SIGKILL)
		close(killed)
		return nil, nil, false
	})
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("no produce request after the control was set\n%s", p.log)
	}
	p.kill9()
	stop()
	wg.Wait()

	// What the killed process left on disk.
	store, err := ledger.OpenStore(filepath.Join(p.dataDir, "db"), ledger.StoreOptions{}) // node.StoreDir
	if err != nil {
		t.Fatal(err)
	}
	cursor, ok, err := feed.ReadCursor(store, "siem")
	size := store.State().Size
	store.Close()
	if err != nil || !ok {
		t.Fatalf("cursor after kill -9: %v %v", ok, err)
	}
	if cursor >= size {
		t.Fatalf("the sink had caught up (cursor %d, size %d): the kill was not mid-delivery", cursor, size)
	}
	t.Logf("killed with %d entries in the log (%d events appended by the test), durable cursor %d", size, appended, cursor)

	// The cursor never runs ahead of Kafka's acknowledgements.
	before := consumeAll(t, b, int(cursor), false)
	have := map[uint64]bool{}
	var high uint64
	for _, c := range before {
		have[c.index] = true
		high = max(high, c.index+1)
	}
	for i := uint64(0); i < cursor; i++ {
		if !have[i] {
			t.Fatalf("entry %d is below the durable cursor %d but not in the topic", i, cursor)
		}
	}
	if high <= cursor || high > cursor+batchSize {
		t.Errorf("the topic holds entries up to %d; want some of the batch in flight past the durable cursor %d, at most one batch", high, cursor)
	}

	// Restart: delivery resumes from the cursor and catches up with
	// everything, including what is appended after the restart.
	p.start()
	if n := appendLoop(context.Background(), pb.NewLedgerClient(p.conn), appended+1000, 1000); n != appended+2000 {
		t.Fatalf("appends after the restart stopped at e-%d\n%s", n, p.log)
	}
	waitFor(60*time.Second, func() string { return fmt.Sprintf("sink status %v\n%s", st, p.log) }, func() bool {
		st = p.sinkStatus()
		return st.TreeSize > size && st.Cursor == st.TreeSize
	})
	total := st.TreeSize
	got := consumeAll(t, b, int(total), false)
	dups := checkDelivered(t, got, int(total))
	seen := map[uint64]int{}
	for _, c := range got {
		if seen[c.index]++; seen[c.index] == 2 && (c.index < cursor || c.index >= cursor+batchSize) {
			t.Errorf("entry %d delivered twice, outside the batch in flight at the kill [%d, %d)", c.index, cursor, cursor+batchSize)
		}
	}
	if dups == 0 {
		t.Error("no duplicates: the batch in flight at the kill was not delivered again")
	}
	t.Logf("after restart: %d records for %d entries, %d duplicates (topic held %d past the cursor at the kill)", len(got), total, dups, high-min(high, cursor))
}
