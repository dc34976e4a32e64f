// Package elastic is the feed's Elasticsearch / OpenSearch sink: it
// indexes each entry as one document through the _bulk API with the
// "create" action and _id = the ledger index, so a retried batch never
// duplicates a document (a 409 for an existing _id counts as delivered).
// Each document is the feed record plus "@timestamp" (the receive time),
// which data streams require. Per-item failures are retried item by item: 429 and 5xx
// items later, other 4xx items (a mapping conflict) are rejections that
// go to the dead-letter file when one is configured.
//
// Use: s, err := elastic.New(cfg); hand s to feed.NewManager in a
// feed.SinkSpec; the Manager calls Deliver and, at the end, Close.
package elastic

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auditledger/ledgerd/feed"
)

// Type is the sink type name in configuration and status.
const Type = "elasticsearch"

// Config configures an Elasticsearch or OpenSearch sink (the
// "elasticsearch" entries of the sinks section).
type Config struct {
	feed.Delivery
	// URLs of the cluster's nodes; each attempt after a failure moves
	// to the next. Required.
	URLs []string `json:"urls"`
	// Index (or data stream) name. Required.
	Index string `json:"index"`
	// Pipeline is an optional ingest pipeline.
	Pipeline string `json:"pipeline,omitempty"`
	// Basic auth (Username and Password) or an API key (its encoded
	// "id:key" form, as Elasticsearch returns it).
	Username string          `json:"username,omitempty"`
	Password feed.Secret     `json:"password,omitzero"`
	APIKey   feed.Secret     `json:"apiKey,omitzero"`
	TLS      *feed.TLSConfig `json:"tls,omitempty"`
}

// Validate checks cfg without connecting.
func (c Config) Validate() error {
	if err := c.Delivery.Validate(); err != nil {
		return err
	}
	if len(c.URLs) == 0 || c.Index == "" {
		return fmt.Errorf("%w: elasticsearch sink %s: urls and index are required", feed.ErrConfig, c.Name)
	}
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%w: elasticsearch sink %s: bad url %q", feed.ErrConfig, c.Name, u)
		}
	}
	if c.Username != "" && !c.APIKey.IsZero() {
		return fmt.Errorf("%w: elasticsearch sink %s: give username/password or apiKey, not both", feed.ErrConfig, c.Name)
	}
	return nil
}

// Sink indexes entries through _bulk.
type Sink struct {
	cfg    Config
	client *http.Client
	auth   string // Authorization header value
	next   atomic.Uint32
}

// New builds the sink. It does not connect.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	s := &Sink{cfg: cfg}
	var err error
	if s.client, err = feed.HTTPClient(cfg.TLS); err != nil {
		return nil, err
	}
	switch {
	case cfg.Username != "":
		pw, err := cfg.Password.Read("elasticsearch password")
		if err != nil {
			return nil, err
		}
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+pw))
	case !cfg.APIKey.IsZero():
		key, err := cfg.APIKey.Read("elasticsearch api key")
		if err != nil {
			return nil, err
		}
		s.auth = "ApiKey " + key
	}
	return s, nil
}

// action is one _bulk action line.
type action struct {
	Create struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	} `json:"create"`
}

// bulkResponse is the part of a _bulk response the sink reads.
type bulkResponse struct {
	Errors bool                          `json:"errors"`
	Items  []map[string]bulkItemResponse `json:"items"`
}

type bulkItemResponse struct {
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

// Body returns the _bulk request body of batch.
func (s *Sink) Body(batch []*feed.Item) []byte {
	var buf bytes.Buffer
	var a action
	a.Create.Index = s.cfg.Index
	enc := json.NewEncoder(&buf)
	for _, it := range batch {
		a.Create.ID = strconv.FormatUint(it.Index, 10)
		enc.Encode(&a) // cannot fail: strings only
		// The record with "@timestamp" (the receive time) first, as data
		// streams require and Kibana expects.
		buf.WriteString(`{"@timestamp":"`)
		buf.WriteString(it.Entry.ReceivedTime().Format(time.RFC3339Nano))
		buf.WriteString(`",`)
		buf.Write(it.JSON(s.cfg.IncludeLeaf)[1:])
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// Deliver sends batch as one _bulk request.
func (s *Sink) Deliver(ctx context.Context, batch []*feed.Item) error {
	base := s.cfg.URLs[int(s.next.Load())%len(s.cfg.URLs)]
	u := strings.TrimRight(base, "/") + "/_bulk"
	if s.cfg.Pipeline != "" {
		u += "?pipeline=" + url.QueryEscape(s.cfg.Pipeline)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(s.Body(batch)))
	if err != nil {
		return fmt.Errorf("elasticsearch: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.next.Add(1) // try another node next time
		return fmt.Errorf("elasticsearch: %w", err)
	}
	body, err := feed.ReadResponse(resp)
	if err != nil {
		return fmt.Errorf("elasticsearch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 {
			s.next.Add(1)
		}
		// A whole-request failure (429, 5xx, auth, 413) is retried: no
		// document of a refused request was indexed, and if some were,
		// their _id makes the retry harmless.
		return fmt.Errorf("elasticsearch: _bulk: %s: %s", resp.Status, feed.Snippet(body))
	}
	var br bulkResponse
	if err := json.Unmarshal(body, &br); err != nil {
		return fmt.Errorf("elasticsearch: _bulk response: %w", err)
	}
	if len(br.Items) != len(batch) {
		return fmt.Errorf("elasticsearch: _bulk answered %d items for %d", len(br.Items), len(batch))
	}
	if !br.Errors {
		return nil
	}
	var pe feed.PartialError
	for i, m := range br.Items {
		var r bulkItemResponse
		for _, v := range m {
			r = v
		}
		switch {
		case r.Status >= 200 && r.Status < 300, r.Status == http.StatusConflict:
			// Created, or created by an earlier attempt.
		case feed.Retryable(r.Status):
			pe.Failed = append(pe.Failed, feed.ItemError{Pos: i, Err: fmt.Errorf("elasticsearch: document %s: status %d: %s", r.ID, r.Status, feed.Snippet(r.Error))})
		default:
			pe.Failed = append(pe.Failed, feed.ItemError{Pos: i, Err: fmt.Errorf("%w: elasticsearch: document %s: status %d: %s", feed.ErrRejected, r.ID, r.Status, feed.Snippet(r.Error))})
		}
	}
	if len(pe.Failed) == 0 {
		return nil
	}
	return &pe
}

// Close closes idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
