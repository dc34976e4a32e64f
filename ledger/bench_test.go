package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user+system CPU time. Reported per event it
// stays meaningful on a shared machine, where wall-clock rates do not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchEvents returns n seed-like events of about 300 bytes encoded.
func benchEvents(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = testEvent(i)
	}
	return evs
}

// BenchmarkAppendConcurrent32 is 32 clients each appending single events,
// fsync on: group commit turns them into shared batches.
//
//	go test -run '^$' -bench AppendConcurrent32 -benchtime 20000x ./ledger/
func BenchmarkAppendConcurrent32(b *testing.B) {
	keys := newTestKeys(b)
	l, _ := openTestLedger(b, b.TempDir(), keys, StoreOptions{})
	evs := benchEvents(1024)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := l.Append(context.Background(), evs[(int(i)+c)%len(evs):][:1]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}

// BenchmarkAppendBatch1000 appends batches of 1000 events from 4 clients,
// fsync on.
//
//	go test -run '^$' -bench AppendBatch1000 -benchtime 100x ./ledger/
func BenchmarkAppendBatch1000(b *testing.B) {
	keys := newTestKeys(b)
	l, _ := openTestLedger(b, b.TempDir(), keys, StoreOptions{})
	evs := benchEvents(1000)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(context.Background(), evs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/event")
}

// BenchmarkInclusionProof measures proofs served from a 100k-entry store.
func BenchmarkInclusionProof(b *testing.B) {
	keys := newTestKeys(b)
	l, st := openTestLedger(b, b.TempDir(), keys, StoreOptions{NoSync: true})
	evs := benchEvents(1000)
	for range 100 {
		if _, err := l.Append(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	size := st.State().Size
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := st.InclusionProof(uint64(i*7919)%size, size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreApply is the serial part of the write path alone: Apply of
// pre-sealed batches of 1000 leaves, without fsync. It is what bounds
// single-node batch throughput.
//
//	go test -run '^$' -bench StoreApply -benchtime 200x ./ledger/
func BenchmarkStoreApply(b *testing.B) {
	for _, size := range []int{1000, 10, 1} {
		b.Run(fmt.Sprintf("batch%d", size), func(b *testing.B) { benchStoreApply(b, size) })
	}
}

// benchStoreApply applies b.N batches of size events each (NoSync): the
// Store's own cost per event, without the group commit in front. Small
// batches show the fixed cost of a batch (state row, tile segments, the
// Pebble commit) and memtable inserts that find no neighbour to start from.
func benchStoreApply(b *testing.B, size int) {
	keys := newTestKeys(b)
	st, err := OpenStore(b.TempDir(), StoreOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	batches := make([][][]byte, b.N)
	for i := range batches {
		batches[i] = make([][]byte, size)
		for j := range batches[i] {
			n := i*size + j
			e := Entry{Event: testEvent(n), ReceivedAt: int64(n)}
			e.ID = fmt.Sprintf("01890000-0000-7000-8000-%012d", n)
			batches[i][j] = keys.hmac.sealLeaf(&e)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		if _, err := st.Apply(uint64(i+1), batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*size), "cpu-µs/event")
}

// BenchmarkAppendSequential is one client appending single events, fsync
// on: the latency floor of the write path without the API in front.
//
//	go test -run '^$' -bench AppendSequential -benchtime 3000x ./ledger/
func BenchmarkAppendSequential(b *testing.B) {
	keys := newTestKeys(b)
	l, _ := openTestLedger(b, b.TempDir(), keys, StoreOptions{})
	evs := benchEvents(1024)
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		t0 := time.Now()
		if _, err := l.Append(context.Background(), evs[i%len(evs):][:1]); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}
