// Package splunk is the feed's Splunk HTTP Event Collector sink. It
// posts batches of events to /services/collector/event with the HEC
// token, one JSON event object per entry (the feed record as "event",
// the ledger index as the indexed field "ledger_index"), and, when
// indexer acknowledgement is enabled, polls /services/collector/ack
// until Splunk confirms the batch is indexed.
//
// HEC has no idempotency key: a batch whose response or acknowledgement
// is lost is sent again, so Splunk may hold a duplicate, which searches
// remove with "dedup ledger_index". A refused request (503 busy, 429,
// 5xx) indexed nothing and is retried whole.
//
// Use: s, err := splunk.New(cfg); hand s to feed.NewManager in a
// feed.SinkSpec; the Manager calls Deliver and, at the end, Close.
package splunk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/ledgerd/feed"
)

// Type is the sink type name in configuration and status.
const Type = "splunk"

// Config configures a Splunk HEC sink (the "splunk" entries of the
// sinks section).
type Config struct {
	feed.Delivery
	// URL of the collector, e.g. https://splunk.example:8088. Required.
	URL string `json:"url"`
	// Token is the HEC token. Required.
	Token feed.Secret `json:"token"`
	// Index, Source (default "ledgerd"), SourceType (default "_json")
	// and Host are set on every event.
	Index      string `json:"index,omitempty"`
	Source     string `json:"source,omitempty"`
	SourceType string `json:"sourcetype,omitempty"`
	Host       string `json:"host,omitempty"`
	// Ack waits for indexer acknowledgement (the token must have it
	// enabled). AckPoll (default 500ms) and AckTimeout (default 20s, within the
	// delivery timeout)
	// pace the polling; an unacknowledged batch is sent again.
	Ack        bool          `json:"ack,omitempty"`
	AckPoll    feed.Duration `json:"ackPoll,omitempty"`
	AckTimeout feed.Duration `json:"ackTimeout,omitempty"`
	// Channel is the request channel (a GUID); generated when empty.
	Channel string          `json:"channel,omitempty"`
	TLS     *feed.TLSConfig `json:"tls,omitempty"`
}

// Validate checks cfg without connecting.
func (c Config) Validate() error {
	if err := c.Delivery.Validate(); err != nil {
		return err
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: splunk sink %s: bad url %q", feed.ErrConfig, c.Name, c.URL)
	}
	if c.Token.IsZero() {
		return fmt.Errorf("%w: splunk sink %s: token is required", feed.ErrConfig, c.Name)
	}
	return nil
}

// Sink posts entries to HEC.
type Sink struct {
	cfg    Config
	client *http.Client
	token  string
	base   string
}

// New builds the sink. It does not connect.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.Source == "" {
		cfg.Source = "ledgerd"
	}
	if cfg.SourceType == "" {
		cfg.SourceType = "_json"
	}
	if cfg.AckPoll <= 0 {
		cfg.AckPoll = feed.Duration(500 * time.Millisecond)
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = feed.Duration(20 * time.Second)
	}
	if cfg.Channel == "" {
		cfg.Channel = newGUID()
	}
	tok, err := cfg.Token.Read("splunk token")
	if err != nil {
		return nil, err
	}
	client, err := feed.HTTPClient(cfg.TLS)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, client: client, token: tok, base: strings.TrimRight(cfg.URL, "/")}, nil
}

func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// event is one HEC event object.
type event struct {
	Time       string            `json:"time"` // epoch seconds, ms precision
	Host       string            `json:"host,omitempty"`
	Source     string            `json:"source,omitempty"`
	SourceType string            `json:"sourcetype,omitempty"`
	Index      string            `json:"index,omitempty"`
	Event      json.RawMessage   `json:"event"`
	Fields     map[string]string `json:"fields"`
}

// Body returns the request body of batch: concatenated event objects.
func (s *Sink) Body(batch []*feed.Item) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, it := range batch {
		ms := it.Entry.ReceivedAt / int64(time.Millisecond)
		enc.Encode(event{
			Time:       strconv.FormatInt(ms/1000, 10) + "." + fmt.Sprintf("%03d", ms%1000),
			Host:       s.cfg.Host,
			Source:     s.cfg.Source,
			SourceType: s.cfg.SourceType,
			Index:      s.cfg.Index,
			Event:      it.JSON(s.cfg.IncludeLeaf),
			Fields:     map[string]string{"ledger_index": strconv.FormatUint(it.Index, 10)},
		})
	}
	return buf.Bytes()
}

// hecResponse is HEC's answer.
type hecResponse struct {
	Text               string `json:"text"`
	Code               int    `json:"code"`
	AckID              *int64 `json:"ackId"`
	InvalidEventNumber *int   `json:"invalid-event-number"`
}

func (s *Sink) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Splunk-Request-Channel", s.cfg.Channel)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := feed.ReadResponse(resp)
	return resp.StatusCode, b, err
}

// Deliver posts batch and, with Ack, waits for its acknowledgement.
func (s *Sink) Deliver(ctx context.Context, batch []*feed.Item) error {
	status, body, err := s.post(ctx, "/services/collector/event", s.Body(batch))
	if err != nil {
		return fmt.Errorf("splunk: %w", err)
	}
	var r hecResponse
	jerr := json.Unmarshal(body, &r)
	if status != http.StatusOK {
		if status == http.StatusBadRequest && jerr == nil && r.InvalidEventNumber != nil {
			// HEC refused one event as malformed. Events before it may
			// have been indexed; resend them (a duplicate at worst, not
			// a loss) and reject the bad one.
			n := *r.InvalidEventNumber
			var pe feed.PartialError
			for i := range batch {
				switch {
				case i == n:
					pe.Failed = append(pe.Failed, feed.ItemError{Pos: i, Err: fmt.Errorf("%w: splunk: event %d: %s (code %d)", feed.ErrRejected, batch[i].Index, r.Text, r.Code)})
				default:
					pe.Failed = append(pe.Failed, feed.ItemError{Pos: i, Err: fmt.Errorf("splunk: batch refused at event %d: %s", n, r.Text)})
				}
			}
			if n >= 0 && n < len(batch) {
				return &pe
			}
		}
		return fmt.Errorf("splunk: %d: %s", status, feed.Snippet(body))
	}
	if jerr != nil {
		return fmt.Errorf("splunk: response: %w", jerr)
	}
	if r.Code != 0 {
		return fmt.Errorf("splunk: code %d: %s", r.Code, r.Text)
	}
	if !s.cfg.Ack {
		return nil
	}
	if r.AckID == nil {
		return fmt.Errorf("splunk: ack is enabled but HEC returned no ackId (is indexer acknowledgement on for this token?)")
	}
	return s.waitAck(ctx, *r.AckID)
}

// waitAck polls the ack endpoint until id is acknowledged.
func (s *Sink) waitAck(ctx context.Context, id int64) error {
	deadline := time.Now().Add(s.cfg.AckTimeout.D())
	req, _ := json.Marshal(map[string][]int64{"acks": {id}})
	key := strconv.FormatInt(id, 10)
	for {
		status, body, err := s.post(ctx, "/services/collector/ack?channel="+url.QueryEscape(s.cfg.Channel), req)
		if err != nil {
			return fmt.Errorf("splunk: ack %d: %w", id, err)
		}
		if status == http.StatusOK {
			var r struct {
				Acks map[string]bool `json:"acks"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				return fmt.Errorf("splunk: ack response: %w", err)
			}
			if r.Acks[key] {
				return nil
			}
		} else if !feed.Retryable(status) {
			return fmt.Errorf("splunk: ack %d: %d: %s", id, status, feed.Snippet(body))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("splunk: ack %d not confirmed within %v; resending the batch", id, s.cfg.AckTimeout.D())
		}
		t := time.NewTimer(s.cfg.AckPoll.D())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// Close closes idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
