package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/kafka"
	"github.com/auditledger/ledgerd/feed/webhook"
	"github.com/auditledger/ledgerd/ledger"
)

// benchEvents returns batches of 1000 events with unique ids.
func benchEvents(prefix string, n int) [][]ledger.Event {
	var out [][]ledger.Event
	for i := 0; i < n; i += 1000 {
		k := min(1000, n-i)
		evs := make([]ledger.Event, k)
		for j := range evs {
			evs[j] = feedtest.Event(prefix, i+j)
		}
		out = append(out, evs)
	}
	return out
}

func benchManager(b *testing.B, l *feedtest.Ledger, sinks ...feed.SinkSpec) *feed.Manager {
	m, err := feed.NewManager(feed.ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer(), Sinks: sinks, Seed: 1,
		LeaderPoll: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchInFlight is the Delivery.InFlight of benchSink, set by the
// sub-benchmarks that compare it.
var benchInFlight = 1

func benchSink(b *testing.B, name string, brokers ...string) feed.SinkSpec {
	d := feed.Delivery{Name: name, BatchSize: 1000, InFlight: benchInFlight, MinBackoff: feed.Duration(10 * time.Millisecond), MaxBackoff: feed.Duration(100 * time.Millisecond)}
	s, err := kafka.New(kafka.Config{Delivery: d, Brokers: brokers, Topic: topic})
	if err != nil {
		b.Fatal(err)
	}
	return feed.SinkSpec{Type: kafka.Type, Delivery: d, Sink: s}
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// says more about cost than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func waitCursor(b *testing.B, l *feedtest.Ledger, name string, want uint64) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c, _, err := feed.ReadCursor(l.Store, name)
		if err != nil {
			b.Fatal(err)
		}
		if c >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("cursor %d, want %d", c, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkKafkaSinkKeepsUp appends b.N events in batches of 1000 while
// a Kafka sink (kfake on loopback, 4 partitions, in this process)
// delivers them; the time runs until the sink has delivered the last
// one. "full-speed" appends as fast as the ledger takes them; "50k/s"
// paces the appends at 50,000 events/s (open loop: a batch every 20ms
// of schedule), the rate the sink must keep up with.
//
// append-events/s is the append rate the sink had to follow;
// delivered-events/s is what the sink delivered while the appends ran
// (cursor at the end of the appends / their duration); events/s is end
// to end; lag-at-append-end and max-lag (sampled after each append) are
// how far behind it was; cpu-µs/event is the CPU of the whole process
// (appends, sink and the in-process broker) per event.
//
//	go test -run '^$' -bench KafkaSinkKeepsUp -benchtime 200000x -count 3 ./feed/kafka/
func BenchmarkKafkaSinkKeepsUp(b *testing.B) {
	for _, mode := range []struct {
		name     string
		rate     int // events/s; 0: full speed
		inFlight int
	}{{"full-speed/inflight=1", 0, 1}, {"full-speed/inflight=4", 0, 4}, {"50k/s/inflight=1", 50000, 1}, {"50k/s/inflight=4", 50000, 4}} {
		b.Run(mode.name, func(b *testing.B) {
			benchInFlight = mode.inFlight
			defer func() { benchInFlight = 1 }()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.DataDir(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			l := feedtest.New(b)
			batches := benchEvents("k", b.N)
			m := benchManager(b, l, benchSink(b, "kafka", c.ListenAddrs()...))
			defer m.Close(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			var maxLag, sent uint64
			for _, evs := range batches {
				if mode.rate > 0 {
					if d := time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(mode.rate))); d > 0 {
						time.Sleep(d)
					}
				}
				if _, err := l.Ledger.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
				sent += uint64(len(evs))
				c, _, _ := feed.ReadCursor(l.Store, "kafka")
				maxLag = max(maxLag, sent-min(c, sent))
			}
			appendDur := time.Since(start)
			atEnd, _, _ := feed.ReadCursor(l.Store, "kafka")
			waitCursor(b, l, "kafka", uint64(b.N))
			total := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/appendDur.Seconds(), "append-events/s")
			b.ReportMetric(float64(atEnd)/appendDur.Seconds(), "delivered-events/s")
			b.ReportMetric(float64(b.N)/total.Seconds(), "events/s")
			b.ReportMetric(float64(uint64(b.N)-atEnd), "lag-at-append-end")
			b.ReportMetric(float64(maxLag), "max-lag")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/event")
		})
	}
}

// BenchmarkAppendWithSinks measures batch appends (1000 events per call,
// op = one event) with no sink and with a healthy Kafka sink (kfake in
// this process) delivering them as they come. Appends never wait for
// sinks: the difference is the sink's reads, encoding, cursor commits
// and the broker competing for the machine's two cores.
//
//	go test -run '^$' -bench AppendWithSinks -benchtime 200000x -count 3 ./feed/kafka/
func BenchmarkAppendWithSinks(b *testing.B) {
	for _, mode := range []string{"none", "kafka-healthy"} {
		b.Run(mode, func(b *testing.B) {
			l := feedtest.New(b)
			if mode != "none" {
				m := benchManager(b, l, brokenOrHealthySink(b, mode))
				defer m.Close(context.Background())
			}
			batches := benchEvents(fmt.Sprint("a-", mode), b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for _, evs := range batches {
				if _, err := l.Ledger.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/event")
		})
	}
}

// BenchmarkAppendBrokenSinkCost compares batch appends (1000 events per
// call; op = one event per mode) with no sink and with a broken sink: a
// Kafka broker address that refuses connections, or a webhook receiver
// that answers 500 to everything. On a shared machine the load drifts
// more than the 5% this is about, so the modes take turns in rounds of
// 5,000 events, in rotating order, each on its own ledger; a broken
// sink's Manager starts at the beginning of its round and stops at the
// end, and its round is timed once it has failed twice (it has then
// read its backlog, which it does once in its life, and is retrying). It
// is then in its fastest retries: the short backoff of benchSink (10ms
// to 100ms), far more often than the defaults (100ms to 30s).
// <mode>/none is the median over rounds of the append throughput ratio
// to the no-sink round next to it (1 = no cost); <mode>-events/s are
// totals.
//
//	go test -run '^$' -bench AppendBrokenSinkCost -benchtime 200000x -count 3 ./feed/kafka/
func BenchmarkAppendBrokenSinkCost(b *testing.B) {
	modes := []string{"none", "kafka-broken", "webhook-500"}
	ledgers := make([]*feedtest.Ledger, len(modes))
	sinks := make([]func() feed.SinkSpec, len(modes))
	for i, mode := range modes {
		ledgers[i] = feedtest.New(b)
		ledgers[i].Append(b, "backlog", 0, 2000, 1000)
		if mode != "none" {
			sinks[i] = brokenSinkMaker(b, mode)
		}
	}
	const round = 5000
	elapsed := make([]time.Duration, len(modes))
	ratios := make([][]float64, len(modes))
	b.ResetTimer()
	for done, r := 0, 0; done < b.N; done, r = done+round, r+1 {
		n := min(round, b.N-done)
		took := make([]time.Duration, len(modes))
		for k := range modes {
			i := (k + r) % len(modes)
			b.StopTimer()
			batches := benchEvents(fmt.Sprintf("%s-%d", modes[i], done), n)
			var m *feed.Manager
			if sinks[i] != nil {
				// Timed from its second failed attempt on: by then it has
				// read what it holds of its backlog, once per life, and
				// is in the retry loop, its steady state.
				m = benchManager(b, ledgers[i], sinks[i]())
				feedtest.WaitFor(b, 30*time.Second, func() string { return "no failed attempt" }, func() bool { return m.Status()[0].Failed >= 2*1000 })
			}
			b.StartTimer()
			start := time.Now()
			for _, evs := range batches {
				if _, err := ledgers[i].Ledger.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			took[i] = time.Since(start)
			elapsed[i] += took[i]
			if m != nil {
				b.StopTimer()
				if st := m.Status()[0]; st.Cursor != 0 {
					b.Fatalf("a broken sink delivered: %+v", st)
				}
				m.Close(context.Background())
				b.StartTimer()
			}
		}
		for i := range modes {
			ratios[i] = append(ratios[i], took[0].Seconds()/took[i].Seconds())
		}
	}
	b.StopTimer()
	for i, mode := range modes {
		b.ReportMetric(float64(b.N)/elapsed[i].Seconds(), mode+"-events/s")
		if i > 0 {
			slices.Sort(ratios[i])
			b.ReportMetric(ratios[i][len(ratios[i])/2], mode+"/none")
		}
	}
}

// brokenSinkMaker returns a function that makes a new broken sink of
// mode for each Manager (Close closes its sinks).
func brokenSinkMaker(b *testing.B, mode string) func() feed.SinkSpec {
	if mode == "webhook-500" {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "down", http.StatusInternalServerError)
		}))
		b.Cleanup(srv.Close)
		return func() feed.SinkSpec { return webhookSink(b, srv.URL) }
	}
	return func() feed.SinkSpec { return brokenOrHealthySink(b, mode) }
}

func webhookSink(b *testing.B, url string) feed.SinkSpec {
	b.Setenv("BENCH_HOOK_SECRET", "0123456789abcdef0123")
	d := feed.Delivery{Name: "hook", BatchSize: 1000, MinBackoff: feed.Duration(10 * time.Millisecond), MaxBackoff: feed.Duration(100 * time.Millisecond)}
	s, err := webhook.New(webhook.Config{Delivery: d, URL: url, Secret: feed.Secret{Env: "BENCH_HOOK_SECRET"}})
	if err != nil {
		b.Fatal(err)
	}
	return feed.SinkSpec{Type: webhook.Type, Delivery: d, Sink: s}
}

// brokenOrHealthySink returns the sink of a BenchmarkAppendWithSinks or
// BenchmarkBrokenSinkCPU mode.
func brokenOrHealthySink(b *testing.B, mode string) feed.SinkSpec {
	switch mode {
	case "kafka-healthy":
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.DataDir(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return benchSink(b, "kafka", c.ListenAddrs()...)
	case "kafka-broken":
		return benchSink(b, "kafka", "127.0.0.1:1")
	case "webhook-500":
		return brokenSinkMaker(b, mode)()
	}
	b.Fatalf("mode %s", mode)
	return feed.SinkSpec{}
}

// BenchmarkBrokenSinkCPU measures what a broken sink costs while it
// retries with a backlog of 10,000 entries and no appends: the CPU time
// of the whole process per second of wall time (op = 100ms of it), and
// the delivery attempts per second. It must back off, not spin.
//
//	go test -run '^$' -bench BrokenSinkCPU -benchtime 20x -count 3 ./feed/kafka/
func BenchmarkBrokenSinkCPU(b *testing.B) {
	for _, mode := range []string{"none", "kafka-broken", "webhook-500"} {
		b.Run(mode, func(b *testing.B) {
			l := feedtest.New(b)
			for _, evs := range benchEvents("c", 10000) {
				if _, err := l.Ledger.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			var sinks []feed.SinkSpec
			if mode != "none" {
				sinks = append(sinks, brokenOrHealthySink(b, mode))
			}
			m := benchManager(b, l, sinks...)
			defer m.Close(context.Background())
			status := func() feed.Status {
				if mode == "none" {
					return feed.Status{LastError: "none"}
				}
				return m.Status()[0]
			}
			feedtest.WaitFor(b, 30*time.Second, func() string { return "no failed attempt" }, func() bool { return status().LastError != "" })
			// Setup's garbage is not the sink's cost.
			debug.FreeOSMemory()
			failed0 := status().Failed
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				time.Sleep(100 * time.Millisecond)
			}
			b.StopTimer()
			st := status()
			if st.Cursor != 0 {
				b.Fatalf("a broken sink delivered: %+v", st)
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/b.Elapsed().Seconds()/1000, "cpu-ms/s")
			b.ReportMetric(float64(st.Failed-failed0)/1000/b.Elapsed().Seconds(), "attempts/s")
		})
	}
}

// BenchmarkKafkaSinkDrain measures the sink alone: b.N events are
// appended first, then the time runs until the sink has delivered them.
//
//	go test -run '^$' -bench KafkaSinkDrain -benchtime 200000x ./feed/kafka/
func BenchmarkKafkaSinkDrain(b *testing.B) {
	for _, inFlight := range []int{1, 4} {
		b.Run(fmt.Sprint("inflight=", inFlight), func(b *testing.B) {
			benchInFlight = inFlight
			defer func() { benchInFlight = 1 }()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.DataDir(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			l := feedtest.New(b)
			for _, evs := range benchEvents("d", b.N) {
				if _, err := l.Ledger.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			m := benchManager(b, l, benchSink(b, "kafka", c.ListenAddrs()...))
			defer m.Close(context.Background())
			waitCursor(b, l, "kafka", uint64(b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// CPU of the sink and the in-process broker together, per event.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/event")
		})
	}
}

// TestServeKfake runs the in-process broker of these tests as a broker
// for a real ledgerd, until SIGINT or SIGTERM, when KFAKE_SERVE is set to
// its host:port (topic audit-events, 4 partitions), e.g. to benchmark a
// ledgerd with a Kafka sink with ledgerctl bench:
//
//	go test -c -o /tmp/kafka.test ./feed/kafka/
//	KFAKE_SERVE=127.0.0.1:19092 /tmp/kafka.test -test.run TestServeKfake -test.v &
func TestServeKfake(t *testing.T) {
	addr := os.Getenv("KFAKE_SERVE")
	if addr == "" {
		t.Skip("set KFAKE_SERVE=host:port to serve a broker")
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.Ports(port), kfake.DataDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	t.Logf("kfake serving topic %s on %v", topic, c.ListenAddrs())
	<-ctx.Done()
}
