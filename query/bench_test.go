package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// Benchmarks. The query benchmarks build one shared store of
// benchEvents() events (default 1,000,000; env LEDGER_QUERY_BENCH_EVENTS)
// from 10,000 actors over 7 days, once per test binary, and wait for its
// compactions to settle (env LEDGER_QUERY_BENCH_CACHE_MB sets Pebble's
// block cache; default Pebble's 8 MB):
//
//	go test -run '^$' -bench Query -benchtime 2000x ./query/
//
// Half the events come from 100 busy actors (about 700 a day each), the
// rest from 9,900 quiet ones; 50 resource types, 4 results, 20
// applications, 3 environments, 1,000 IPs, a unique request id and a
// client timestamp each, about 330 bytes a leaf.

const (
	benchActors = 10000
	benchBusy   = 100
	benchDays   = 7
)

// cpuTime is this process's user+system CPU time: per event it stays
// meaningful on a shared machine, where wall-clock rates do not. It
// includes Pebble's background flushes and compactions.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchEvents() int {
	if v, err := strconv.Atoi(os.Getenv("LEDGER_QUERY_BENCH_EVENTS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

var benchStart = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// benchLeaves returns n leaves starting at event number first, received
// evenly over benchDays (total events in all).
func benchLeaves(rng *rand.Rand, first, n, total int) [][]byte {
	step := benchDays * 24 * time.Hour / time.Duration(total)
	return benchLeavesAt(rng, first, n, func(k int) time.Time { return benchStart.Add(time.Duration(k) * step) })
}

// ingestLeaves returns batch number batch of 1,000 events as a busy
// server receives them: one clock reading per batch (Seal stamps each
// append call once), 10 ms apart, so about 100,000 events a second.
func ingestLeaves(rng *rand.Rand, batch int) [][]byte {
	at := benchStart.Add(time.Duration(batch) * 10 * time.Millisecond)
	return benchLeavesAt(rng, batch*1000, 1000, func(int) time.Time { return at })
}

func benchLeavesAt(rng *rand.Rand, first, n int, received func(k int) time.Time) [][]byte {
	leaves := make([][]byte, n)
	for i := range n {
		k := first + i
		var actor int
		if rng.IntN(2) == 0 {
			actor = rng.IntN(benchBusy)
		} else {
			actor = benchBusy + rng.IntN(benchActors-benchBusy)
		}
		recv := received(k)
		e := ledger.Entry{
			Event: ledger.Event{
				ID:        fmt.Sprintf("evt-%09d", k),
				Timestamp: recv.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond).Format(time.RFC3339Nano),
				Actor:     ledger.Actor{ID: fmt.Sprintf("user-%05d", actor), Type: "user", IP: fmt.Sprintf("10.0.%d.%d", actor%1000/250, actor%250), Session: "sess-" + strconv.Itoa(actor)},
				Action: ledger.Action{Type: [...]string{"create", "read", "update", "delete"}[rng.IntN(4)], Resource: fmt.Sprintf("resource-%02d", rng.IntN(50)),
					ResourceID: fmt.Sprintf("doc-%d", rng.IntN(200000)), Result: [...]string{"success", "success", "success", "failure", "denied", "error"}[rng.IntN(6)], Duration: int64(rng.IntN(500)),
					Metadata: map[string]string{"format": "json"}},
				Context: ledger.Context{RequestID: fmt.Sprintf("req-%09d", k), Environment: [...]string{"production", "staging", "dev"}[rng.IntN(3)],
					Application: fmt.Sprintf("service-%02d", rng.IntN(20)), Version: "2.1.0"},
				Version: "1.0.0",
			},
			ReceivedAt: recv.UnixNano(),
			KeyID:      "k1",
			Signature:  make([]byte, 32),
		}
		leaves[i] = ledger.EncodeLeaf(&e)
	}
	return leaves
}

var bench struct {
	once  sync.Once
	dir   string
	store *ledger.Store
	eng   *Engine
	err   error
	build time.Duration
}

func benchStore(b *testing.B) (*ledger.Store, *Engine) {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "query-bench-")
		if bench.err != nil {
			return
		}
		idx := NewIndex()
		opts := ledger.StoreOptions{NoSync: true}
		if mb, err := strconv.Atoi(os.Getenv("LEDGER_QUERY_BENCH_CACHE_MB")); err == nil && mb > 0 {
			c := pebble.NewCache(int64(mb) << 20)
			defer c.Unref()
			opts.Pebble = &pebble.Options{Cache: c}
		}
		idx.Install(&opts)
		st, err := ledger.OpenStore(bench.dir, opts)
		if err != nil {
			bench.err = err
			return
		}
		bench.store = st
		if bench.err = idx.Attach(context.Background(), st); bench.err != nil {
			return
		}
		total := benchEvents()
		rng := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		for k := 0; k < total; k += 1000 {
			if _, _, err := st.ApplyNext(benchLeaves(rng, k, min(1000, total-k), total)); err != nil {
				bench.err = err
				return
			}
		}
		bench.build = time.Since(start)
		if err := st.DB().Flush(); err != nil {
			bench.err = err
			return
		}
		// Measure a settled store, not one still compacting its build.
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if st.Health().CompactionsInProgress == 0 && st.Health().L0Sublevels <= 1 {
				break
			}
		}
		bench.eng, bench.err = NewEngine(EngineOptions{Store: st, CursorKey: []byte("bench")})
		fmt.Fprintf(os.Stderr, "query bench: built %d events in %v (%.0f events/s, indexes included, no fsync); block cache %s MB (empty: Pebble's default 8)\n",
			total, bench.build.Round(time.Millisecond), float64(total)/bench.build.Seconds(), os.Getenv("LEDGER_QUERY_BENCH_CACHE_MB"))
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.store, bench.eng
}

func closeBenchStore() {
	if bench.store != nil {
		bench.store.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

// runLatency runs b.N queries made by mk and reports p50 and p99.
func runLatency(b *testing.B, eng *Engine, mk func(rng *rand.Rand) Request, wantRows int) {
	rng := rand.New(rand.NewPCG(3, 4))
	lat := make([]time.Duration, 0, b.N)
	rows := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := mk(rng)
		t := time.Now()
		p, err := eng.Query(context.Background(), req)
		lat = append(lat, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		rows += len(p.Rows)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
	if wantRows > 0 && rows < wantRows*b.N*9/10 {
		b.Errorf("returned %.1f rows per query, want about %d", float64(rows)/float64(b.N), wantRows)
	}
}

func dayRange(rng *rand.Rand) (time.Time, time.Time) {
	from := benchStart.Add(time.Duration(rng.IntN(benchDays)) * 24 * time.Hour)
	return from, from.Add(24 * time.Hour)
}

// BenchmarkQueryActorDay: one busy actor over one day, limit 100, total
// counted (target p99 < 10 ms).
func BenchmarkQueryActorDay(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		from, to := dayRange(rng)
		return Request{Filter: Filter{ActorID: fmt.Sprintf("user-%05d", rng.IntN(benchBusy)), ReceivedFrom: from, ReceivedTo: to}, Limit: 100}
	}, 100)
}

// BenchmarkQueryActorDayDesc: the same, newest first.
func BenchmarkQueryActorDayDesc(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		from, to := dayRange(rng)
		return Request{Filter: Filter{ActorID: fmt.Sprintf("user-%05d", rng.IntN(benchBusy)), ReceivedFrom: from, ReceivedTo: to}, Limit: 100, Descending: true}
	}, 100)
}

// BenchmarkQueryActorAndResource: a busy actor AND one of 50 resource
// types over the whole log (about 100 matches), limit 100, total counted
// (target < 20 ms).
func BenchmarkQueryActorAndResource(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		return Request{Filter: Filter{ActorID: fmt.Sprintf("user-%05d", rng.IntN(benchBusy)), Resource: fmt.Sprintf("resource-%02d", rng.IntN(50))}, Limit: 100}
	}, 50)
}

// BenchmarkQueryQuietActor: one of the 9,900 quiet actors (about 50
// events), whole log.
func BenchmarkQueryQuietActor(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		return Request{Filter: Filter{ActorID: fmt.Sprintf("user-%05d", benchBusy+rng.IntN(benchActors-benchBusy))}, Limit: 100}
	}, 0)
}

// BenchmarkQueryResourceResultDay: two unselective filters (1/50 and
// 1/6) over one day, limit 100, total estimated past 10,000 candidates.
func BenchmarkQueryResourceResultDay(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		from, to := dayRange(rng)
		return Request{Filter: Filter{Resource: fmt.Sprintf("resource-%02d", rng.IntN(50)), Result: "denied", ReceivedFrom: from, ReceivedTo: to}, Limit: 100}
	}, 100)
}

// BenchmarkQueryHour: every event of one hour (no field filter), limit 100.
func BenchmarkQueryHour(b *testing.B) {
	_, eng := benchStore(b)
	runLatency(b, eng, func(rng *rand.Rand) Request {
		from := benchStart.Add(time.Duration(rng.IntN(benchDays*24)) * time.Hour)
		return Request{Filter: Filter{ReceivedFrom: from, ReceivedTo: from.Add(time.Hour)}, Limit: 100}
	}, 100)
}

// BenchmarkApplyBatch measures what the index costs the write path:
// Store.ApplyNext of 1,000-event batches, with and without the query
// hook, fsync off (the CPU and memtable cost alone) and on.
//
//	go test -run '^$' -bench ApplyBatch -benchtime 300x -count 3 ./query/
func BenchmarkApplyBatch(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, hook := range []bool{false, true} {
			b.Run(fmt.Sprintf("fsync=%v/index=%v", sync, hook), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(5, 6))
				batches := make([][][]byte, b.N)
				for i := range batches {
					batches[i] = ingestLeaves(rng, i)
				}
				opts := ledger.StoreOptions{NoSync: !sync}
				idx := NewIndex()
				if hook {
					idx.Install(&opts)
				}
				st, err := ledger.OpenStore(b.TempDir(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				if err := idx.Attach(context.Background(), st); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				// Pipelined like the ledger's group commit: up to 4 in flight.
				var waits []func() error
				for _, leaves := range batches {
					_, wait, err := st.ApplyNext(leaves)
					if err != nil {
						b.Fatal(err)
					}
					waits = append(waits, wait)
					if len(waits) == 4 {
						if err := waits[0](); err != nil {
							b.Fatal(err)
						}
						waits = waits[1:]
					}
				}
				for _, w := range waits {
					if err := w(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*1000)/1000, "cpu-µs/event")
			})
		}
	}
}

// BenchmarkLedgerAppendBatch is the write path a client sees, in
// process: ledger.Append of 1,000-event batches (validate, stamp, HMAC,
// encode, group commit, fsync), with and without the query index.
//
//	go test -run '^$' -bench LedgerAppendBatch -benchtime 200x -count 3 ./query/
func BenchmarkLedgerAppendBatch(b *testing.B) {
	for _, hook := range []bool{false, true} {
		b.Run(fmt.Sprintf("index=%v", hook), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, 8))
			batches := make([][]ledger.Event, b.N)
			for i := range batches {
				for _, leaf := range ingestLeaves(rng, i) {
					e, err := ledger.DecodeLeaf(leaf)
					if err != nil {
						b.Fatal(err)
					}
					batches[i] = append(batches[i], e.Event)
				}
			}
			var opts ledger.StoreOptions
			idx := NewIndex()
			if hook {
				idx.Install(&opts)
			}
			st, err := ledger.OpenStore(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if err := idx.Attach(context.Background(), st); err != nil {
				b.Fatal(err)
			}
			signer, _ := testSigner(b)
			ring, err := ledger.NewKeyring(make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			l, err := ledger.New(ledger.Config{Store: st, Origin: "bench.example/log", Signer: signer, HMAC: ring})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			// Four clients, so group commit and the sync pipeline work as
			// they do under load.
			var wg sync.WaitGroup
			var next atomic.Int64
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						if _, err := l.Append(context.Background(), batches[i]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*1000)/1000, "cpu-µs/event")
		})
	}
}
