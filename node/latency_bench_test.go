package node

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/api"
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// BenchmarkSequentialLatency is one client, one call at a time, against
// a node with its defaults (fsync, field encryption, query index): the
// ledger called directly, then Append and GetInclusionProof over
// loopback gRPC, so that the difference is what the API costs a call.
// Client and server share the process (and its CPU figure).
//
//	go test -run '^$' -bench SequentialLatency -benchtime 3000x ./node/
func BenchmarkSequentialLatency(b *testing.B) {
	evs := make([]*pb.Event, 1024)
	for i := range evs {
		evs[i] = seedLike(i)
	}
	ctx := context.Background()
	b.Run("ledger-append", func(b *testing.B) {
		n, _ := startTestNodeB(b)
		events := make([]ledger.Event, len(evs))
		for i, e := range evs {
			events[i] = api.EventFromProto(e)
		}
		measureLatency(b, func(i int) error {
			_, err := n.Ledger().Append(ctx, events[i%len(events):][:1])
			return err
		})
	})
	b.Run("grpc-append", func(b *testing.B) {
		_, c := startTestNodeB(b)
		measureLatency(b, func(i int) error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: evs[i%len(evs)]})
			return err
		})
	})
	b.Run("grpc-prove", func(b *testing.B) {
		n, c := startTestNodeB(b)
		batch := &pb.AppendBatchRequest{Events: evs}
		for range 10 {
			if _, err := c.AppendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		cp, err := n.Ledger().WaitCheckpoint(ctx, 10*uint64(len(evs)))
		if err != nil {
			b.Fatal(err)
		}
		measureLatency(b, func(i int) error {
			_, err := c.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{
				Key: &pb.GetInclusionProofRequest_Index{Index: uint64(i*7919) % cp.Size}, TreeSize: cp.Size,
			})
			return err
		})
	})
}

// measureLatency calls op b.N times in a row and reports the median and
// 90th percentile latency and the process's CPU per call.
func measureLatency(b *testing.B, op func(i int) error) {
	b.Helper()
	for i := range 200 { // warm up connections, caches and goroutines
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		t0 := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
