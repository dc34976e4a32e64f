// Package kafka is the feed's Kafka sink, on segmentio/kafka-go. It is
// the only package of the module that imports a Kafka client.
//
// Each entry becomes one message: key = event id (so one partition, in
// order, per id), value = the feed's JSON record (feed.Record: event,
// index, leaf hash, signature), headers "ledger-index" (decimal) and
// "ledger-leaf-hash" (hex), timestamp = the ledger's receive time.
// Writes wait for all in-sync replicas (acks=all). A consumer that needs
// exactly-once processing deduplicates by ledger-index.
//
// The sink is a feed.Pipeliner: with "inFlight" above 1 the next
// batches are sent while earlier ones wait for their acks, which hides
// the broker's latency (BenchmarkKafkaSinkKeepsUp compares 1 and 4);
// each partition still receives them in feed order, and a restart
// re-sends at most inFlight batches.
//
// Use: s, err := kafka.New(cfg); hand s to feed.NewManager in a
// feed.SinkSpec; the Manager calls Deliver and, at the end, Close.
package kafka

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/auditledger/ledgerd/feed"
)

// Type is the sink type name in configuration and status.
const Type = "kafka"

// Config configures a Kafka sink (the "kafka" entries of the sinks
// section). Brokers and Topic are required. The topic must exist.
type Config struct {
	feed.Delivery
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	// ClientID defaults to "ledgerd".
	ClientID string `json:"clientId,omitempty"`
	// Compression: "none" (default), "gzip", "snappy", "lz4" or "zstd".
	Compression string `json:"compression,omitempty"`
	// Partitioner maps the key to a partition: "murmur2" (default, as
	// the Java client does), "fnv" (as Sarama) or "crc32" (as librdkafka).
	Partitioner string `json:"partitioner,omitempty"`
	// BatchBytes caps one produce request per partition (default 1 MiB).
	BatchBytes int64 `json:"batchBytes,omitempty"`
	// Linger is how long a partly filled partition batch waits before it
	// is sent (default 0: at once). Deliver hands the client a whole
	// feed batch (up to Delivery.BatchSize entries, gathered for up to
	// Delivery.BatchWait), which it splits by partition in one step, so
	// waiting longer gathers nothing more and only delays the acks.
	Linger feed.Duration `json:"linger,omitempty"`
	// MaxAttempts is how often the client retries a produce inside one
	// delivery attempt before the runner's backoff takes over (default 3).
	MaxAttempts int             `json:"maxAttempts,omitempty"`
	TLS         *feed.TLSConfig `json:"tls,omitempty"`
	SASL        *SASLConfig     `json:"sasl,omitempty"`
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism: "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string      `json:"mechanism"`
	Username  string      `json:"username"`
	Password  feed.Secret `json:"password"`
}

// Validate checks cfg without connecting.
func (c Config) Validate() error {
	if err := c.Delivery.Validate(); err != nil {
		return err
	}
	if len(c.Brokers) == 0 || c.Topic == "" {
		return fmt.Errorf("%w: kafka sink %s: brokers and topic are required", feed.ErrConfig, c.Name)
	}
	if _, err := compression(c.Compression); err != nil {
		return fmt.Errorf("%w: kafka sink %s: %v", feed.ErrConfig, c.Name, err)
	}
	if _, err := balancer(c.Partitioner); err != nil {
		return fmt.Errorf("%w: kafka sink %s: %v", feed.ErrConfig, c.Name, err)
	}
	if c.SASL != nil {
		switch c.SASL.Mechanism {
		case "plain", "scram-sha-256", "scram-sha-512":
		default:
			return fmt.Errorf("%w: kafka sink %s: sasl mechanism %q", feed.ErrConfig, c.Name, c.SASL.Mechanism)
		}
	}
	return nil
}

func compression(name string) (kafkago.Compression, error) {
	switch name {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "zstd":
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("compression %q is not none, gzip, snappy, lz4 or zstd", name)
}

func balancer(name string) (kafkago.Balancer, error) {
	switch name {
	case "", "murmur2":
		return kafkago.Murmur2Balancer{}, nil
	case "fnv":
		return &kafkago.Hash{}, nil
	case "crc32":
		return kafkago.CRC32Balancer{}, nil
	}
	return nil, fmt.Errorf("partitioner %q is not murmur2, fnv or crc32", name)
}

// Sink writes entries to a Kafka topic.
type Sink struct {
	cfg       Config
	w         *kafkago.Writer
	transport *kafkago.Transport
}

// New builds the sink. It does not connect: the first Deliver does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.ClientID == "" {
		cfg.ClientID = "ledgerd"
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.Linger <= 0 {
		// kafka-go reads 0 as one second; a nanosecond sends each
		// partition's share of a Deliver as soon as it is split off.
		cfg.Linger = feed.Duration(time.Nanosecond)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	codec, _ := compression(cfg.Compression)
	bal, _ := balancer(cfg.Partitioner)
	var tc *tls.Config
	var err error
	if tc, err = cfg.TLS.Build(); err != nil {
		return nil, err
	}
	var mech sasl.Mechanism
	if s := cfg.SASL; s != nil {
		pw, err := s.Password.Read("kafka sasl password")
		if err != nil {
			return nil, err
		}
		switch s.Mechanism {
		case "plain":
			mech = plain.Mechanism{Username: s.Username, Password: pw}
		case "scram-sha-256", "scram-sha-512":
			algo := scram.SHA256
			if s.Mechanism == "scram-sha-512" {
				algo = scram.SHA512
			}
			if mech, err = scram.Mechanism(algo, s.Username, pw); err != nil {
				return nil, fmt.Errorf("%w: kafka sasl: %v", feed.ErrConfig, err)
			}
		}
	}
	// Each writer gets its own transport: a shared one caches metadata
	// across writers (see NOTES-deps).
	tr := &kafkago.Transport{
		Dial:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DialTimeout: 5 * time.Second,
		ClientID:    cfg.ClientID,
		TLS:         tc,
		SASL:        mech,
		MetadataTTL: 10 * time.Second,
	}
	w := &kafkago.Writer{
		Addr:            kafkago.TCP(cfg.Brokers...),
		Topic:           cfg.Topic,
		Balancer:        bal,
		MaxAttempts:     cfg.MaxAttempts,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		BatchTimeout:    cfg.Linger.D(),
		ReadTimeout:     cfg.Timeout.D(),
		WriteTimeout:    cfg.Timeout.D(),
		RequiredAcks:    kafkago.RequireAll,
		// Send returns once its messages are queued; completion reports
		// their acks to the wait it returned.
		Async:       true,
		Completion:  completion,
		Compression: codec,
		Transport:   tr,
	}
	return &Sink{cfg: cfg, w: w, transport: tr}, nil
}

// Message returns the Kafka message of one entry.
func Message(it *feed.Item, withLeaf bool) kafkago.Message {
	var a msgAlloc
	return a.message(it, withLeaf)
}

// msgAlloc builds the messages of one Deliver with their keys, header
// values and header slices carved from shared slabs, not three or four
// allocations per message. The slabs are fresh for every Deliver: the
// client may still hold the messages of an abandoned one.
type msgAlloc struct {
	bytes   []byte
	headers []kafkago.Header
}

func (a *msgAlloc) message(it *feed.Item, withLeaf bool) kafkago.Message {
	const hashHex = 2 * len(it.LeafHash)
	need := len(it.Entry.ID) + 20 + hashHex
	if cap(a.bytes)-len(a.bytes) < need {
		a.bytes = make([]byte, 0, max(need, 16<<10))
	}
	b := a.bytes
	k := len(b)
	b = append(b, it.Entry.ID...)
	i := len(b)
	b = strconv.AppendUint(b, it.Index, 10)
	h := len(b)
	b = hex.AppendEncode(b, it.LeafHash[:])
	a.bytes = b
	if cap(a.headers)-len(a.headers) < 2 {
		a.headers = make([]kafkago.Header, 0, 256)
	}
	a.headers = append(a.headers,
		kafkago.Header{Key: "ledger-index", Value: b[i:h:h]},
		kafkago.Header{Key: "ledger-leaf-hash", Value: b[h:len(b):len(b)]})
	n := len(a.headers)
	return kafkago.Message{
		Key:     b[k:i:i],
		Value:   it.JSON(withLeaf),
		Headers: a.headers[n-2 : n : n],
		Time:    it.Entry.ReceivedTime(),
	}
}

// messageOverhead bounds what a record batch adds to a message's key,
// value and headers.
const messageOverhead = 64

// Deliver writes batch and waits for acks=all. Messages the broker
// refuses as too large are reported as feed.ErrRejected; other failures
// are retried by the runner.
func (s *Sink) Deliver(ctx context.Context, batch []*feed.Item) error {
	return s.Send(ctx, batch)()
}

// Send queues batch for writing and returns a wait for its acks=all, as
// Deliver does (the sink is a feed.Pipeliner). The client writes each
// partition's batches one after the other in the order they were sent,
// so with several sends in flight the feed's order holds per partition.
func (s *Sink) Send(ctx context.Context, batch []*feed.Item) (wait func() error) {
	st := &sendState{done: make(chan struct{})}
	msgs := make([]kafkago.Message, 0, len(batch))
	refs := make([]msgRef, 0, len(batch))
	var a msgAlloc
	for i, it := range batch {
		m := a.message(it, s.cfg.IncludeLeaf)
		size := len(m.Key) + len(m.Value) + messageOverhead
		for _, h := range m.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if int64(size) > s.cfg.BatchBytes {
			st.failed = append(st.failed, feed.ItemError{Pos: i, Err: fmt.Errorf("%w: message of %d bytes exceeds batchBytes %d", feed.ErrRejected, size, s.cfg.BatchBytes)})
			continue
		}
		refs = append(refs, msgRef{st, i})
		m.WriterData = &refs[len(refs)-1]
		msgs = append(msgs, m)
	}
	st.left = len(msgs)
	if len(msgs) == 0 {
		close(st.done)
	} else if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		// The asynchronous writer queued nothing: it failed before,
		// looking up the partitions or checking sizes.
		var tooLarge kafkago.MessageTooLargeError
		if !errors.As(err, &tooLarge) {
			err = fmt.Errorf("kafka: write to %s: %w", s.cfg.Topic, err)
			return func() error { return err }
		}
		for _, r := range refs {
			e := error(err)
			if string(batch[r.pos].Entry.ID) == string(tooLarge.Message.Key) {
				e = fmt.Errorf("%w: %v", feed.ErrRejected, err)
			}
			st.failed = append(st.failed, feed.ItemError{Pos: r.pos, Err: e})
		}
		close(st.done)
	}
	return func() error {
		select {
		case <-st.done:
		case <-ctx.Done():
			return fmt.Errorf("kafka: write to %s: %w", s.cfg.Topic, ctx.Err())
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.failed) == 0 {
			return nil
		}
		return &feed.PartialError{Failed: slices.Clone(st.failed)}
	}
}

// sendState collects the outcome of one Send's messages.
type sendState struct {
	mu     sync.Mutex
	left   int // messages not yet written or failed
	failed []feed.ItemError
	done   chan struct{} // closed when left reaches 0
}

// msgRef is a message's WriterData: its Send and batch position.
type msgRef struct {
	st  *sendState
	pos int
}

// completion is the writer's Completion: it records the outcome of each
// message of a written (or failed) partition batch in its Send.
func completion(msgs []kafkago.Message, err error) {
	if err != nil && errors.Is(err, kafkago.MessageSizeTooLarge) {
		err = fmt.Errorf("%w: %v", feed.ErrRejected, err)
	}
	for _, m := range msgs {
		r, ok := m.WriterData.(*msgRef)
		if !ok {
			continue
		}
		st := r.st
		st.mu.Lock()
		if err != nil {
			st.failed = append(st.failed, feed.ItemError{Pos: r.pos, Err: err})
		}
		if st.left--; st.left == 0 {
			close(st.done)
		}
		st.mu.Unlock()
	}
}

// Close writes what was sent and not yet written, then closes the
// connections.
func (s *Sink) Close() error {
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	return err
}
