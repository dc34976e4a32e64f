package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
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
	for _, mode := range []string{"plain", "auth", "auth+encryption", "auth+encryption-actor-only"} {
		b.Run(mode, func(b *testing.B) {
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
			evs := make([]*pb.Event, 1000)
			for i := range evs {
				evs[i] = seedLike(i)
			}
			// Warm up: the first batch creates the subjects' data keys.
			if _, err := c.AppendBatch(context.Background(), &pb.AppendBatchRequest{Events: evs}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.StartTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := c.AppendBatch(context.Background(), &pb.AppendBatchRequest{Events: evs}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
			// CPU per event (server and the in-process clients) is steadier
			// than wall-clock rates on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/event")
			if strings.HasPrefix(mode, "auth+encryption") {
				leaf, err := n.Ledger().Store().Leaf(5)
				if err != nil || !containsSealed(leaf) {
					b.Fatal(fmt.Errorf("events were not encrypted: %v", err))
				}
			}
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func containsSealed(leaf []byte) bool {
	for i := 0; i+7 <= len(leaf); i++ {
		if p := string(leaf[i : i+7]); p == "pii:v1:" || p == "pii:v2:" {
			return true
		}
	}
	return false
}
