package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// seedLike is a ~300-byte event like the seed's example.
func seedLike(i int) *pb.Event {
	return &pb.Event{
		Timestamp: "2024-01-15T10:30:00.000Z",
		Actor:     &pb.Actor{Id: fmt.Sprintf("user-%d", i%1000), Type: "user", Ip: "192.168.1.100", Session: "sess-789"},
		Action:    &pb.Action{Type: "update", Resource: "user_profile", ResourceId: fmt.Sprintf("profile-%d", i), Result: "success", Duration: 150},
		Context:   &pb.Context{RequestId: fmt.Sprintf("req-%d", i), Environment: "production", Application: "user-service", Version: "2.1.0"},
		Version:   "1.0.0",
	}
}

// BenchmarkGRPCAppend32 is 32 clients doing single-event Append over
// loopback gRPC against a node with fsync on.
//
//	go test -run '^$' -bench GRPCAppend32 -benchtime 20000x ./node/
func BenchmarkGRPCAppend32(b *testing.B) {
	b.StopTimer()
	_, c := startTestNodeB(b)
	evs := make([]*pb.Event, 1024)
	for i := range evs {
		evs[i] = seedLike(i)
	}
	b.ReportAllocs()
	b.StartTimer()
	runOps(b, 32, func(i int) error {
		_, err := c.Append(context.Background(), &pb.AppendRequest{Event: evs[i%1024]})
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkGRPCAppendBatch1000 is 4 clients sending AppendBatch of 1000
// events over loopback gRPC, fsync on.
//
//	go test -run '^$' -bench GRPCAppendBatch1000 -benchtime 100x ./node/
func BenchmarkGRPCAppendBatch1000(b *testing.B) {
	b.StopTimer()
	_, c := startTestNodeB(b)
	evs := make([]*pb.Event, 1000)
	for i := range evs {
		evs[i] = seedLike(i)
	}
	b.ReportAllocs()
	b.StartTimer()
	runOps(b, 4, func(int) error {
		_, err := c.AppendBatch(context.Background(), &pb.AppendBatchRequest{Events: evs})
		return err
	})
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// runOps runs op for i = 1..b.N on workers goroutines and returns when
// all are done; a failed op fails the benchmark and stops its worker.
func runOps(b *testing.B, workers int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
