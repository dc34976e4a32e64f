package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// BenchmarkSecurityCost is BenchmarkGRPCAppendBatch1000 (4 clients,
// AppendBatch of 1000 seed-like events over loopback gRPC, fsync on)
// with security off, with token authentication only, and with token
// authentication and field encryption (actor.id, ip and session under
// 1000 subjects' data keys), as shipped, and with only the actor id
// personal. The target: encryption within 15% of plain.
//
//	go test -run '^$' -bench SecurityCost -benchtime 200x -count 5 ./node/
func BenchmarkSecurityCost(b *testing.B) {
	evs := make([]*pb.Event, 1000)
	for i := range evs {
		evs[i] = seedLike(i)
	}
	for _, mode := range []string{"plain", "auth", "auth+encryption", "auth+encryption-actor-only"} {
		b.Run(mode, func(b *testing.B) { securityCost(b, mode, func(int) []*pb.Event { return evs }) })
	}
}

// BenchmarkSecurityCostWorkload is BenchmarkSecurityCost's auth and
// auth+encryption with batches like the bench workload's (ledgerctl bench
// --workload append-batch; bench/generator.go), where encryption costs
// more: 80% of events from 50,000 Zipf-distributed users, each with its
// ip and user agent and a new session id per event; 15% services with
// varying ips; 3% system; 2% api keys seen once (a new data key each).
// Batches are built before the timer starts.
//
//	go test -run '^$' -bench SecurityCostWorkload -benchtime 100x -count 3 ./node/
func BenchmarkSecurityCostWorkload(b *testing.B) {
	for _, mode := range []string{"auth", "auth+encryption"} {
		b.Run(mode, func(b *testing.B) {
			batches := workloadBatches(b.N+1, 1)
			securityCost(b, mode, func(i int) []*pb.Event { return batches[i] })
		})
	}
}

// workloadBatches returns n batches of 1000 bench-like events.
func workloadBatches(n int, seed uint64) [][]*pb.Event {
	r := rand.New(rand.NewPCG(seed, 2))
	users := rand.NewZipf(r, 1.1, 1, 50_000-1)
	agents := []string{"Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1)", "curl/8.4.0", "python-requests/2.31", "okhttp/4.12"}
	out := make([][]*pb.Event, n)
	for i := range out {
		evs := make([]*pb.Event, 1000)
		for j := range evs {
			a := &pb.Actor{}
			switch p := r.IntN(100); {
			case p < 80:
				u := users.Uint64() + 1
				a = &pb.Actor{Id: fmt.Sprintf("user-%06d", u), Type: "user", Ip: fmt.Sprintf("10.%d.%d.%d", u>>16&255, u>>8&255, u&255),
					Session: fmt.Sprintf("sess_%016x", r.Uint64()), UserAgent: agents[u%4]}
			case p < 95:
				a = &pb.Actor{Id: fmt.Sprintf("svc-%d", r.IntN(8)), Type: "service", Ip: fmt.Sprintf("172.16.%d.%d", r.IntN(16), 2+r.IntN(250)), UserAgent: "Go-http-client/2.0"}
			case p < 98:
				a = &pb.Actor{Id: "system", Type: "system"}
			default:
				a = &pb.Actor{Id: fmt.Sprintf("ak_%024x", r.Uint64()), Type: "api-key", Ip: fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)), UserAgent: agents[4+r.IntN(3)]}
			}
			evs[j] = &pb.Event{
				Timestamp: "2024-01-15T10:30:00.000Z",
				Actor:     a,
				Action: &pb.Action{Type: "update", Resource: "document", ResourceId: fmt.Sprintf("doc-%d", r.IntN(1_000_000)), Result: "success", Duration: 42,
					Metadata: map[string]string{"method": "PUT", "path": "/api/v1/documents/x"}},
				Context: &pb.Context{RequestId: fmt.Sprintf("req-%016x", r.Uint64()), Environment: "production", Application: "docs", Version: "2.1.0"},
				Version: "1.0.0",
			}
		}
		out[i] = evs
	}
	return out
}

// securityCost runs one mode of BenchmarkSecurityCost: a warm-up
// AppendBatch of batch(0), then b.N of batch(1..b.N) from 4 clients.
func securityCost(b *testing.B, mode string, batch func(i int) []*pb.Event) {
	b.StopTimer()
	cfg := Defaults()
	cfg.DataDir = b.TempDir()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "bench.example/ledger"
	cfg.Security.Banner = io.Discard
	cfg.Security.SelfAudit.Disabled = true // appends are never self-audited anyway
	cfg.Security.Encryption.Disabled = !strings.HasPrefix(mode, "auth+encryption")
	if mode == "auth+encryption-actor-only" {
		// The trade-off: only the actor id is personal data.
		cfg.Security.Encryption.PersonalFields = []string{"actor.id"}
	}
	cfg.Security.noAuth = mode == "plain"
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(context.Background())
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if mode != "plain" {
		opts = append(opts, withAdminToken(b, cfg.DataDir))
	}
	conn, err := grpc.NewClient(n.GRPCAddr(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewLedgerClient(conn)
	// Warm up: the first batch creates the subjects' data keys.
	if _, err := c.AppendBatch(context.Background(), &pb.AppendBatchRequest{Events: batch(0)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0, gc0 := cpuTime(), gcCPU()
	b.StartTimer()
	runOps(b, 4, func(i int) error {
		_, err := c.AppendBatch(context.Background(), &pb.AppendBatchRequest{Events: batch(i)})
		return err
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	// CPU per event (server and the in-process clients) is steadier
	// than wall-clock rates on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/event")
	// The GC's share: what a change to the live heap's shape moves.
	b.ReportMetric((gcCPU()-gc0)*1e6/float64(b.N*1000), "gc-µs/event")
	if strings.HasPrefix(mode, "auth+encryption") {
		leaf, err := n.Ledger().Store().Leaf(5)
		if err != nil || !containsSealed(leaf) {
			b.Fatal(fmt.Errorf("events were not encrypted: %v", err))
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPU is the CPU time the runtime estimates the GC has used, in
// seconds.
func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

func containsSealed(leaf []byte) bool {
	if leaf[0] == ledger.LeafFormatV2 { // searchable values in binary
		return true
	}
	for i := 0; i+7 <= len(leaf); i++ {
		if p := string(leaf[i : i+7]); p == "pii:v1:" || p == "pii:v2:" {
			return true
		}
	}
	return false
}
