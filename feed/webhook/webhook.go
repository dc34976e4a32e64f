// Package webhook is the feed's webhook sink: it POSTs batches of feed
// records as JSON, signed so the receiver can tell they come from this
// ledger and are fresh.
//
// The request body is {"sink": name, "events": [record, ...]} and carries
//
//	X-Ledger-Timestamp: <unix seconds>
//	X-Ledger-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	X-Ledger-Index-Range: <first>-<last>
//
// plus any configured headers. A receiver recomputes the signature over
// the raw body (Verify does it), rejects timestamps outside its tolerance
// to stop replays, and deduplicates by record index: a batch is sent
// again until a 2xx answer arrives. A 400 or 422 answer rejects the
// content of the whole batch (dead-lettered when a file is configured,
// else retried with an alert); every other answer (auth, 404, 413, 429,
// 5xx) and network errors are retried.
//
// Use: s, err := webhook.New(cfg); hand s to feed.NewManager in a
// feed.SinkSpec; the Manager calls Deliver and, at the end, Close.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/ledgerd/feed"
)

// Type is the sink type name in configuration and status.
const Type = "webhook"

// Header names.
const (
	HeaderTimestamp  = "X-Ledger-Timestamp"
	HeaderSignature  = "X-Ledger-Signature"
	HeaderIndexRange = "X-Ledger-Index-Range"
)

// Config configures a webhook sink (the "webhook" entries of the sinks
// section).
type Config struct {
	feed.Delivery
	// URL receives the POSTs. Required.
	URL string `json:"url"`
	// Secret is the HMAC-SHA256 key, at least 16 bytes. Required.
	Secret feed.Secret `json:"secret"`
	// Headers are added to every request (e.g. an Authorization).
	Headers map[string]string `json:"headers,omitempty"`
	TLS     *feed.TLSConfig   `json:"tls,omitempty"`
}

// Validate checks cfg without connecting.
func (c Config) Validate() error {
	if err := c.Delivery.Validate(); err != nil {
		return err
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: webhook sink %s: bad url %q", feed.ErrConfig, c.Name, c.URL)
	}
	if c.Secret.IsZero() {
		return fmt.Errorf("%w: webhook sink %s: secret is required", feed.ErrConfig, c.Name)
	}
	for k := range c.Headers {
		switch http.CanonicalHeaderKey(k) {
		case HeaderTimestamp, HeaderSignature, HeaderIndexRange, "Content-Type", "Content-Length", "Host":
			return fmt.Errorf("%w: webhook sink %s: header %s is set by the sink", feed.ErrConfig, c.Name, k)
		}
	}
	return nil
}

// Sink posts batches to a URL.
type Sink struct {
	cfg    Config
	client *http.Client
	secret []byte
	now    func() time.Time
}

// New builds the sink. It does not connect.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	sec, err := cfg.Secret.Read("webhook secret")
	if err != nil {
		return nil, err
	}
	if len(sec) < 16 {
		return nil, fmt.Errorf("%w: webhook sink %s: secret is %d bytes; need at least 16", feed.ErrConfig, cfg.Name, len(sec))
	}
	client, err := feed.HTTPClient(cfg.TLS)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, client: client, secret: []byte(sec), now: time.Now}, nil
}

// Payload is the request body.
type Payload struct {
	Sink   string            `json:"sink"`
	Events []json.RawMessage `json:"events"`
}

// Sign returns the signature header value of body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a received request: the signature over timestamp and
// the raw body, and that the timestamp is within tolerance of now.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrStale, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %v", ErrStale, d)
	}
	want := Sign(secret, timestamp, body)
	for _, sig := range strings.Split(signature, ",") { // several during key rotation
		if hmac.Equal([]byte(strings.TrimSpace(sig)), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}

// appendPayload appends the JSON of Payload{name, records of batch}:
// what json.Marshal gives (the records are compact JSON, HTML-escaped,
// and sink names need no escaping), without its pass over every byte
// of every record, which a retrying sink pays on every attempt.
func appendPayload(b []byte, name string, batch []*feed.Item, withLeaf bool) []byte {
	n := len(name) + 32
	for _, it := range batch {
		n += len(it.JSON(withLeaf)) + 1
	}
	b = slices.Grow(b, n)
	b = append(b, `{"sink":`...)
	b = strconv.AppendQuote(b, name)
	b = append(b, `,"events":[`...)
	for i, it := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.JSON(withLeaf)...)
	}
	return append(b, "]}"...)
}

// Deliver posts batch.
func (s *Sink) Deliver(ctx context.Context, batch []*feed.Item) error {
	body := appendPayload(nil, s.cfg.Name, batch, s.cfg.IncludeLeaf)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(s.secret, ts, body))
	req.Header.Set(HeaderIndexRange, fmt.Sprintf("%d-%d", batch[0].Index, batch[len(batch)-1].Index))
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	rb, _ := feed.ReadResponse(resp)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity:
		// The receiver refuses the content itself.
		return fmt.Errorf("%w: webhook: %s: %s", feed.ErrRejected, resp.Status, feed.Snippet(rb))
	default:
		// 408, 429, 5xx, and also 401, 403, 404, 413...: a receiver or
		// configuration problem that an operator fixes; retry (with an
		// alert) rather than dead-letter everything meanwhile.
		return fmt.Errorf("webhook: %s: %s", resp.Status, feed.Snippet(rb))
	}
}

// Close closes idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
