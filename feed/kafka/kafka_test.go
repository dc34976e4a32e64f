package kafka_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/kafka"
	"github.com/auditledger/ledgerd/merkle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kafka-go's writer leaves an idle connection reader for a moment
		// after Close.
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
	)
}

const topic = "audit-events"

// broker is a kfake cluster persisted in dir, so it can be stopped and
// started again on the same port with its data.
type broker struct {
	t    *testing.T
	dir  string
	port int
	c    *kfake.Cluster
}

func startBroker(t *testing.T) *broker {
	b := &broker{t: t, dir: t.TempDir()}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.DataDir(b.dir)}
	if b.port != 0 {
		opts = append(opts, kfake.Ports(b.port))
	}
	var err error
	for range 100 { // the old listener's port may take a moment to free
		if b.c, err = kfake.NewCluster(opts...); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(b.c.ListenAddrs()[0])
	b.port, _ = strconv.Atoi(p)
}

func (b *broker) stop() {
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

func (b *broker) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

func newSink(t *testing.T, b *broker, name string) *kafka.Sink {
	t.Helper()
	return newSinkInFlight(t, b, name, 1)
}

func testDelivery(name string, inFlight int) feed.Delivery {
	return feed.Delivery{Name: name, BatchSize: 500, InFlight: inFlight, MinBackoff: feed.Duration(10 * time.Millisecond), MaxBackoff: feed.Duration(200 * time.Millisecond), Timeout: feed.Duration(5 * time.Second)}
}

func newSinkInFlight(t *testing.T, b *broker, name string, inFlight int) *kafka.Sink {
	t.Helper()
	s, err := kafka.New(kafka.Config{Delivery: testDelivery(name, inFlight), Brokers: []string{b.addr()}, Topic: topic, Compression: "lz4"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startManager(t *testing.T, l *feedtest.Ledger, s *kafka.Sink, name string) *feed.Manager {
	t.Helper()
	return startManagerInFlight(t, l, s, name, 1)
}

func startManagerInFlight(t *testing.T, l *feedtest.Ledger, s *kafka.Sink, name string, inFlight int) *feed.Manager {
	t.Helper()
	m, err := feed.NewManager(feed.ManagerConfig{
		Store: l.Store, Committer: l.Ledger.Committer(), LeaderPoll: 10 * time.Millisecond, Seed: 7,
		Sinks:  []feed.SinkSpec{{Type: kafka.Type, Delivery: testDelivery(name, inFlight), Sink: s}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func cursor(t *testing.T, l *feedtest.Ledger, name string) uint64 {
	c, _, err := feed.ReadCursor(l.Store, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type consumed struct {
	index     uint64
	key       string
	partition int32
	offset    int64
}

// consumeAll reads the whole topic with franz-go, an independent client,
// until it holds want distinct indices and then stays idle for a moment.
// It checks every record against its headers and, with checkID, that
// the event id is e-<index>.
func consumeAll(t *testing.T, b *broker, want int, checkID bool) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []consumed
	distinct := map[uint64]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wait := 5 * time.Second
		if len(distinct) >= want {
			wait = 300 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachError(func(tp string, p int32, err error) {
			if err != context.DeadlineExceeded {
				t.Errorf("fetch %s/%d: %v", tp, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var rec feed.Record
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				t.Fatalf("record at %d/%d: %v", r.Partition, r.Offset, err)
			}
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if hdr["ledger-index"] != strconv.FormatUint(rec.Index, 10) || hdr["ledger-leaf-hash"] != rec.LeafHash || string(r.Key) != rec.ID {
				t.Fatalf("record %d: headers %v, key %q do not match %+v", rec.Index, hdr, r.Key, rec)
			}
			if rec.Signature == "" || rec.KeyID == "" {
				t.Fatalf("record %d without signature", rec.Index)
			}
			if checkID && rec.ID != fmt.Sprintf("e-%d", rec.Index) {
				t.Fatalf("record %d has id %s", rec.Index, rec.ID)
			}
			distinct[rec.Index] = true
			out = append(out, consumed{rec.Index, string(r.Key), r.Partition, r.Offset})
		})
		if n == 0 && len(distinct) >= want {
			return out
		}
	}
	t.Fatalf("consumed %d distinct entries of %d before the deadline", len(distinct), want)
	return nil
}

// checkDelivered asserts every index below n is present and that each
// key lives in one partition with its duplicates in order.
func checkDelivered(t *testing.T, got []consumed, n int) (duplicates int) {
	t.Helper()
	seen := map[uint64]int{}
	part := map[string]int32{}
	lastOff := map[string]int64{}
	for _, c := range got {
		seen[c.index]++
		if p, ok := part[c.key]; ok && p != c.partition {
			t.Fatalf("key %s in partitions %d and %d", c.key, p, c.partition)
		}
		if o, ok := lastOff[c.key]; ok && o >= c.offset {
			t.Fatalf("key %s out of order: offset %d after %d", c.key, c.offset, o)
		}
		part[c.key], lastOff[c.key] = c.partition, c.offset
	}
	for i := 0; i < n; i++ {
		if seen[uint64(i)] == 0 {
			t.Fatalf("entry %d missing from the topic", i)
		}
	}
	return len(got) - n
}

// Appends 10,000 events while the sink runs, stops the broker
// mid-stream, appends more, restarts it: nothing is lost; with one batch
// in flight at a time and with four.
func TestKafkaSinkBrokerOutage(t *testing.T) {
	for _, inFlight := range []int{1, 4} {
		t.Run(fmt.Sprint("inflight=", inFlight), func(t *testing.T) { testBrokerOutage(t, inFlight) })
	}
}

func testBrokerOutage(t *testing.T, inFlight int) {
	b := startBroker(t)
	l := feedtest.New(t)
	s := newSinkInFlight(t, b, "kafka", inFlight)
	m := startManagerInFlight(t, l, s, "kafka", inFlight)
	defer m.Close(context.Background())

	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; i < 10000; i += 100 {
			l.Append(t, "e", i, 100, 100)
		}
	}()
	feedtest.WaitFor(t, 60*time.Second, func() string { return fmt.Sprint("cursor ", cursor(t, l, "kafka")) },
		func() bool { return cursor(t, l, "kafka") >= 2000 })
	b.stop() // mid-stream: appends are still running
	<-appended
	l.Append(t, "e", 10000, 2000, 500) // and go on with the broker down
	feedtest.WaitFor(t, 30*time.Second, func() string { return "no delivery error while the broker is down" },
		func() bool { return m.Status()[0].LastError != "" })
	if c := cursor(t, l, "kafka"); c == 12000 {
		t.Fatal("cursor reached the end with the broker down")
	}
	t.Logf("broker stopped with the cursor at %d", cursor(t, l, "kafka"))
	b.start()
	feedtest.WaitFor(t, 60*time.Second, func() string { return fmt.Sprint("cursor ", cursor(t, l, "kafka"), " ", m.Status()[0].LastError) },
		func() bool { return cursor(t, l, "kafka") == 12000 })

	got := consumeAll(t, b, 12000, true)
	dups := checkDelivered(t, got, 12000)
	t.Logf("%d records for 12000 entries (%d duplicates from retries around the outage)", len(got), dups)
	if st := m.Status()[0]; st.LagEvents != 0 || st.Delivered < 12000 {
		t.Errorf("status %+v", st)
	}
}

// Restarting ledgerd mid-delivery resumes from the cursor, with
// duplicates only within the batch that was in flight.
func TestKafkaSinkLedgerRestart(t *testing.T) {
	b := startBroker(t)
	dir, keys := t.TempDir(), feedtest.NewKeys(t)
	l := feedtest.Open(t, dir, keys)
	l.Append(t, "e", 0, 6000, 1000)
	m := startManager(t, l, newSink(t, b, "k"), "k")
	feedtest.WaitFor(t, 60*time.Second, func() string { return "no progress" }, func() bool { return cursor(t, l, "k") >= 1500 })
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stoppedAt := cursor(t, l, "k")
	l.Close()
	if stoppedAt == 6000 {
		t.Skip("delivery finished before the restart; nothing to test")
	}

	l = feedtest.Open(t, dir, keys)
	if c := cursor(t, l, "k"); c != stoppedAt {
		t.Fatalf("cursor after restart %d, before %d", c, stoppedAt)
	}
	m = startManager(t, l, newSink(t, b, "k"), "k")
	defer m.Close(context.Background())
	l.Append(t, "e", 6000, 1000, 1000)
	feedtest.WaitFor(t, 60*time.Second, func() string { return "not resumed" }, func() bool { return cursor(t, l, "k") == 7000 })
	got := consumeAll(t, b, 7000, true)
	dups := checkDelivered(t, got, 7000)
	if dups > 500 {
		t.Errorf("%d duplicates; at most one batch (500) may be delivered twice", dups)
	}
	t.Logf("stopped at cursor %d; %d duplicates", stoppedAt, dups)
}

func TestKafkaMessage(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 1, 1)
	s := feed.Subscribe(l.Store, 0, feed.Options{})
	it, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := kafka.Message(it, true)
	var rec feed.Record
	if err := json.Unmarshal(m.Value, &rec); err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != "e-0" || rec.Index != 0 || rec.Leaf == "" || !m.Time.Equal(it.Entry.ReceivedTime()) {
		t.Errorf("message %+v, record %+v", m, rec)
	}
	h := merkle.LeafHash(it.Leaf)
	if rec.LeafHash != hex.EncodeToString(h[:]) {
		t.Errorf("leaf hash %s", rec.LeafHash)
	}
}

func TestKafkaConfig(t *testing.T) {
	ok := kafka.Config{Delivery: feed.Delivery{Name: "k"}, Brokers: []string{"127.0.0.1:9"}, Topic: "t"}
	tests := []struct {
		name string
		edit func(*kafka.Config)
		ok   bool
	}{
		{"minimal", func(*kafka.Config) {}, true},
		{"zstd and crc32", func(c *kafka.Config) { c.Compression, c.Partitioner = "zstd", "crc32" }, true},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, false},
		{"no topic", func(c *kafka.Config) { c.Topic = "" }, false},
		{"bad compression", func(c *kafka.Config) { c.Compression = "brotli" }, false},
		{"bad partitioner", func(c *kafka.Config) { c.Partitioner = "random" }, false},
		{"bad sasl", func(c *kafka.Config) { c.SASL = &kafka.SASLConfig{Mechanism: "gssapi"} }, false},
		{"sasl without password", func(c *kafka.Config) {
			c.SASL = &kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: feed.Secret{Env: "LEDGERD_TEST_UNSET_VAR"}}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			s, err := kafka.New(c)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}
