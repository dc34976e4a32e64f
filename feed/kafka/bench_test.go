package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/kafka"
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

func benchSink(b *testing.B, name string, brokers ...string) feed.SinkSpec {
	d := feed.Delivery{Name: name, BatchSize: 1000, MinBackoff: feed.Duration(10 * time.Millisecond), MaxBackoff: feed.Duration(100 * time.Millisecond)}
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
		name string
		rate int // events/s; 0: full speed
	}{{"full-speed", 0}, {"50k/s", 50000}} {
		b.Run(mode.name, func(b *testing.B) {
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
// op = one event) with no sink, with a healthy Kafka sink, and with a
// broken one (its broker address refuses connections, so it retries
// all the time). Appends never wait for sinks: the differences are the
// sink's reads, cursor commits and retries competing for the machine.
//
//	go test -run '^$' -bench AppendWithSinks -benchtime 200000x -count 3 ./feed/kafka/
func BenchmarkAppendWithSinks(b *testing.B) {
	for _, mode := range []string{"none", "kafka-healthy", "kafka-broken"} {
		b.Run(mode, func(b *testing.B) {
			l := feedtest.New(b)
			switch mode {
			case "kafka-healthy":
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.DataDir(b.TempDir()))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				m := benchManager(b, l, benchSink(b, "kafka", c.ListenAddrs()...))
				defer m.Close(context.Background())
			case "kafka-broken":
				m := benchManager(b, l, benchSink(b, "kafka", "127.0.0.1:1"))
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

// BenchmarkKafkaSinkDrain measures the sink alone: b.N events are
// appended first, then the time runs until the sink has delivered them.
//
//	go test -run '^$' -bench KafkaSinkDrain -benchtime 200000x ./feed/kafka/
func BenchmarkKafkaSinkDrain(b *testing.B) {
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
}
