package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// The audit service's README examples, verbatim (its quotes unescaped).
const seedEvent = `{
  "id": "evt-123",
  "timestamp": "2024-01-15T10:30:00.000Z",
  "actor": {
    "id": "user-456",
    "type": "user",
    "ip": "192.168.1.100",
    "session": "sess-789"
  },
  "action": {
    "type": "update",
    "resource": "user_profile",
    "resourceId": "profile-123",
    "result": "success",
    "duration": 150
  },
  "context": {
    "requestId": "req-abc-123",
    "environment": "production",
    "application": "user-service",
    "version": "2.1.0"
  },
  "version": "1.0.0"
}`

// seedBatch is the README's batch shape ({"events": [...], "batchId":
// "batch-456"}) holding its quick-start event (a JS literal there,
// written as JSON with a fixed timestamp) and one more.
const seedBatch = `{
  "events": [
    {
      "id": "event-001",
      "timestamp": "2024-01-15T10:31:00.000Z",
      "actor": {
        "id": "user-123",
        "type": "user",
        "ip": "192.168.1.100"
      },
      "action": {
        "type": "create",
        "resource": "document",
        "resourceId": "doc-456",
        "result": "success"
      },
      "context": {
        "environment": "production",
        "application": "document-service",
        "version": "2.1.0"
      },
      "version": "1.0.0"
    },
    {
      "id": "event-002",
      "timestamp": "2024-01-15T10:32:00.000Z",
      "actor": {"id": "user-123", "type": "user", "ip": "192.168.1.100"},
      "action": {"type": "read", "resource": "document", "resourceId": "doc-456", "result": "denied"},
      "version": "1.0.0"
    }
  ],
  "batchId": "batch-456"
}`

// httpClient calls a node's HTTP API as its admin.
type httpClient struct {
	t     testing.TB
	base  string
	token string
}

func newHTTPClient(t testing.TB, n *Node, dir string) *httpClient {
	return &httpClient{t: t, base: "http://" + n.HTTPAddr(), token: adminToken(t, dir)}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *httpClient) do(method, path, contentType string, body []byte, out any) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, resp.Header, b
}

func (c *httpClient) postJSON(path, body string, out any) int {
	c.t.Helper()
	code, _, _ := c.do(http.MethodPost, path, "application/json", []byte(body), out)
	return code
}

func (c *httpClient) get(path string, out any) int {
	c.t.Helper()
	code, _, _ := c.do(http.MethodGet, path, "", nil, out)
	return code
}

type appendResp struct {
	Success   bool   `json:"success"`
	EventID   string `json:"eventId"`
	Index     uint64 `json:"index"`
	LeafHash  []byte `json:"leafHash"`
	Signature string `json:"signature"`
	Stored    bool   `json:"stored"`
	Streamed  bool   `json:"streamed"`
	Duplicate bool   `json:"duplicate"`
}

type eventResp struct {
	ID        string            `json:"id"`
	Timestamp string            `json:"timestamp"`
	Actor     map[string]string `json:"actor"`
	Action    map[string]any    `json:"action"`
	Context   map[string]string `json:"context"`
	Version   string            `json:"version"`
	Index     uint64            `json:"index"`
	LeafHash  []byte            `json:"leafHash"`
	Leaf      []byte            `json:"leaf"`
	Signature string            `json:"signature"`
}

type pageResp struct {
	Events         []eventResp `json:"events"`
	Total          uint64      `json:"total"`
	TotalEstimated bool        `json:"totalEstimated"`
	Page           int         `json:"page"`
	HasMore        bool        `json:"hasMore"`
	NextCursor     string      `json:"nextCursor"`
}

type errResp struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func TestHTTPSeedPayloads(t *testing.T) {
	dir := t.TempDir()
	n, _ := startTestNode(t, dir)
	c := newHTTPClient(t, n, dir)

	var one appendResp
	if code := c.postJSON("/api/audit/events", seedEvent, &one); code != http.StatusCreated {
		t.Fatalf("POST event: %d", code)
	}
	if !one.Success || one.EventID != "evt-123" || one.Index != 0 || !one.Stored || one.Streamed || len(one.Signature) != 64 {
		t.Fatalf("POST event: %+v", one)
	}
	if _, err := hex.DecodeString(one.Signature); err != nil {
		t.Fatalf("signature %q is not hex", one.Signature)
	}
	// A retry is answered with the stored entry, 200.
	var again appendResp
	if code := c.postJSON("/api/audit/events", seedEvent, &again); code != http.StatusOK || !again.Duplicate || again.Index != 0 || again.Signature != one.Signature {
		t.Fatalf("retry: %d %+v", code, again)
	}

	var batch struct {
		Success         bool   `json:"success"`
		BatchID         string `json:"batchId"`
		EventsProcessed int    `json:"eventsProcessed"`
		Checksum        string `json:"checksum"`
		FirstIndex      uint64 `json:"firstIndex"`
		Results         []struct {
			LeafHash []byte `json:"leafHash"`
		} `json:"results"`
	}
	if code := c.postJSON("/api/audit/events/batch", seedBatch, &batch); code != http.StatusCreated {
		t.Fatalf("POST batch: %d", code)
	}
	h := sha256.New()
	for _, r := range batch.Results {
		h.Write(r.LeafHash)
	}
	if !batch.Success || batch.BatchID != "batch-456" || batch.EventsProcessed != 2 || batch.FirstIndex != 1 || batch.Checksum != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("POST batch: %+v", batch)
	}

	// Read back: the seed's fields, the ledger's index, and a leaf hash
	// that is SHA-256(0x00 || leaf).
	var ev eventResp
	if code := c.get("/api/audit/events/evt-123", &ev); code != http.StatusOK {
		t.Fatalf("GET event: %d", code)
	}
	lh := merkle.LeafHash(ev.Leaf)
	if ev.ID != "evt-123" || ev.Timestamp != "2024-01-15T10:30:00.000Z" || ev.Actor["session"] != "sess-789" || ev.Action["duration"] != 150.0 ||
		ev.Context["requestId"] != "req-abc-123" || ev.Version != "1.0.0" || ev.Index != 0 || !bytes.Equal(lh[:], ev.LeafHash) || ev.Signature != one.Signature {
		t.Fatalf("GET event: %+v", ev)
	}

	// The README's query, on the events' own timestamps.
	var page pageResp
	if code := c.get("/api/audit/events?startTime=2024-01-01T00:00:00Z&endTime=2024-01-16T00:00:00Z&actorId=user-123&limit=100&timeField=timestamp", &page); code != http.StatusOK {
		t.Fatalf("GET events: %d", code)
	}
	if len(page.Events) != 2 || page.Total != 2 || page.TotalEstimated || page.Page != 1 || page.HasMore || page.Events[0].ID != "event-001" || page.Events[0].Index != 1 {
		t.Fatalf("GET events: %+v", page)
	}
	// Receive time (the default) and combined filters.
	now := time.Now().UTC()
	q := url.Values{"startTime": {now.Add(-time.Hour).Format(time.RFC3339)}, "endTime": {now.Add(time.Hour).Format(time.RFC3339)},
		"actorId": {"user-123"}, "result": {"denied"}, "resource": {"document"}}
	if code := c.get("/api/audit/events?"+q.Encode(), &page); code != http.StatusOK || len(page.Events) != 1 || page.Events[0].ID != "event-002" {
		t.Fatalf("combined filters: %d %+v", code, page)
	}

	// Checkpoint, inclusion and consistency proofs verify.
	code, hdr, note1 := c.do(http.MethodGet, "/api/audit/checkpoint", "", nil, nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("checkpoint: %d %s", code, hdr.Get("Content-Type"))
	}
	v, err := note.NewVerifier(n.Keys().VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.OpenCheckpoint(note1, v, "test.example/ledger")
	if err != nil || cp.Size != 3 {
		t.Fatalf("checkpoint %q: %v", note1, err)
	}
	var incl struct {
		Index    uint64   `json:"index"`
		TreeSize uint64   `json:"treeSize"`
		LeafHash []byte   `json:"leafHash"`
		Hashes   [][]byte `json:"hashes"`
	}
	if code := c.get("/api/audit/proofs/inclusion?index=0&size=3", &incl); code != http.StatusOK {
		t.Fatalf("inclusion: %d", code)
	}
	proof := make([]merkle.Hash, len(incl.Hashes))
	for i, b := range incl.Hashes {
		copy(proof[i][:], b)
	}
	if err := merkle.VerifyInclusion(merkle.Hash(incl.LeafHash), incl.Index, incl.TreeSize, proof, cp.Root); err != nil || incl.TreeSize != 3 {
		t.Fatalf("inclusion proof %+v: %v", incl, err)
	}
	var cons struct {
		FromSize uint64   `json:"fromSize"`
		ToSize   uint64   `json:"toSize"`
		Hashes   [][]byte `json:"hashes"`
	}
	if code := c.get("/api/audit/proofs/consistency?from=1&to=3", &cons); code != http.StatusOK || cons.FromSize != 1 || cons.ToSize != 3 || len(cons.Hashes) == 0 {
		t.Fatalf("consistency: %d %+v", code, cons)
	}
	// Hashes travel as standard base64, as ledgerctl prints them.
	_, _, raw := c.do(http.MethodGet, "/api/audit/proofs/consistency?from=1&to=3", "", nil, nil)
	if !bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(cons.Hashes[0]))) {
		t.Fatalf("consistency JSON %s", raw)
	}

	for _, p := range []string{"/health", "/health/detailed", "/health/database", "/health/dependencies"} {
		var body map[string]any
		if code := c.get(p, &body); code != http.StatusOK || body["status"] == nil {
			t.Errorf("%s: %d %v", p, code, body)
		}
	}
	// Health needs no credentials; the API does.
	anon := &httpClient{t: t, base: c.base}
	if code := anon.get("/health", nil); code != http.StatusOK {
		t.Errorf("anonymous /health: %d", code)
	}
	var e errResp
	if code := anon.get("/api/audit/events", &e); code != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
		t.Errorf("anonymous query: %d %+v", code, e)
	}
}

// TestHTTPErrors: every error status, with the JSON body and field.
func TestHTTPErrors(t *testing.T) {
	dir := t.TempDir()
	n, _ := startTestNode(t, dir)
	c := newHTTPClient(t, n, dir)
	if code := c.postJSON("/api/audit/events", seedEvent, nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	big := `{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"success","metadata":{"x":"` + strings.Repeat("a", 2<<20) + `"}}}`
	for _, c2 := range []struct {
		name        string
		method      string
		path        string
		ctype, body string
		status      int
		code, field string
	}{
		{"bad JSON", "POST", "/api/audit/events", "application/json", `{"actor":`, 400, "invalid_argument", "body"},
		{"empty body", "POST", "/api/audit/events", "application/json", ``, 400, "invalid_argument", "body"},
		{"missing actor", "POST", "/api/audit/events", "application/json", `{"action":{"type":"t","resource":"r","result":"success"}}`, 400, "invalid_argument", "actor.id"},
		{"bad result", "POST", "/api/audit/events", "application/json", `{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"ok"}}`, 400, "invalid_argument", "action.result"},
		{"unknown field", "POST", "/api/audit/events", "application/json", `{"actor":{"id":"u"},"acton":{}}`, 400, "invalid_argument", "acton"},
		{"unknown batch field", "POST", "/api/audit/events/batch", "application/json", `{"events":[],"batchID":"x"}`, 400, "invalid_argument", "batchID"},
		{"unknown field in a batch event", "POST", "/api/audit/events/batch", "application/json", `{"events":[{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"success"}},{"actor":{"id":"u","nmae":"x"}}]}`, 400, "invalid_argument", "events[1].nmae"},
		{"bad event in a batch", "POST", "/api/audit/events/batch", "application/json", `{"events":[{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"success"}},{"actor":{"id":"u"}}]}`, 400, "invalid_argument", "events[1].action.type"},
		{"empty batch", "POST", "/api/audit/events/batch", "application/json", `{"events":[]}`, 400, "invalid_argument", "events"},
		{"unknown query parameter", "GET", "/api/audit/events?actorID=u", "", "", 400, "invalid_argument", "actorID"},
		{"bad limit", "GET", "/api/audit/events?limit=5000", "", "", 400, "invalid_argument", "limit"},
		{"bad time", "GET", "/api/audit/events?startTime=yesterday", "", "", 400, "invalid_argument", "startTime"},
		{"bad cursor", "GET", "/api/audit/events?cursor=AAAA", "", "", 400, "invalid_argument", "cursor"},
		{"proof past the tree", "GET", "/api/audit/proofs/inclusion?index=0&size=9", "", "", 400, "invalid_argument", ""},
		{"missing index", "GET", "/api/audit/proofs/inclusion", "", "", 400, "invalid_argument", "index"},
		{"unknown event", "GET", "/api/audit/events/nope", "", "", 404, "not_found", ""},
		{"unknown index", "GET", "/api/audit/proofs/inclusion?index=7", "", "", 404, "not_found", ""},
		{"unknown path", "GET", "/api/audit/nothing", "", "", 404, "not_found", ""},
		{"wrong method", "PUT", "/api/audit/events", "application/json", `{}`, 405, "method_not_allowed", ""},
		{"wrong method on health", "DELETE", "/health", "", "", 405, "method_not_allowed", ""},
		{"id reused", "POST", "/api/audit/events", "application/json", strings.Replace(seedEvent, `"success"`, `"failure"`, 1), 409, "already_exists", "id"},
		{"body over the limit", "POST", "/api/audit/events", "application/json", big, 413, "too_large", ""},
		{"not JSON", "POST", "/api/audit/events", "text/plain", seedEvent, 415, "unsupported_media_type", ""},
	} {
		t.Run(c2.name, func(t *testing.T) {
			var e errResp
			code, hdr, raw := c.do(c2.method, c2.path, c2.ctype, []byte(c2.body), &e)
			if code != c2.status || e.Error.Code != c2.code || e.Error.Field != c2.field || e.Error.Message == "" {
				t.Fatalf("%d %s, want %d %s field %q", code, raw, c2.status, c2.code, c2.field)
			}
			if code == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// Nothing the bad requests sent was stored.
	if size := n.Ledger().Store().State().Size; size != 1 {
		t.Fatalf("tree size %d after bad requests, want 1", size)
	}
}

// TestHTTPPaginationUnderAppends walks 10,000 events of one actor in
// pages of 100, both ways, while more are appended: every event that
// existed when the walk began comes exactly once, in order.
func TestHTTPPaginationUnderAppends(t *testing.T) {
	dir := t.TempDir()
	n, _ := startTestNode(t, dir)
	c := newHTTPClient(t, n, dir)
	const total = 10000
	var want []string
	for b := range total / 1000 {
		// Loaded in process (the walk, not the load, is under test).
		var evs []ledger.Event
		for i := range 1000 {
			id := fmt.Sprintf("walk-%05d", b*1000+i)
			actor := "walker"
			if i%3 == 0 {
				actor = "other" // interleaved: the walk must skip these
			} else {
				want = append(want, id)
			}
			evs = append(evs, ledger.Event{ID: id, Actor: ledger.Actor{ID: actor}, Action: ledger.Action{Type: "read", Resource: "doc", Result: "success"}})
		}
		if _, err := n.Ledger().Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keeps appending walker events during the walk
		defer wg.Done()
		ac := &httpClient{t: t, base: c.base, token: c.token}
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ac.postJSON("/api/audit/events", fmt.Sprintf(`{"id":"late-%d","actor":{"id":"walker"},"action":{"type":"read","resource":"doc","result":"success"}}`, i), nil)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for _, order := range []string{"asc", "desc"} {
		var got []string
		var last uint64
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatal("too many pages")
			}
			q := url.Values{"actorId": {"walker"}, "limit": {"100"}, "order": {order}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var p pageResp
			if code := c.get("/api/audit/events?"+q.Encode(), &p); code != http.StatusOK {
				t.Fatalf("%s page %d: %d", order, pages, code)
			}
			if pages > 0 && p.Page != pages+1 {
				t.Fatalf("%s: page number %d, want %d", order, p.Page, pages+1)
			}
			for i, e := range p.Events {
				if (pages > 0 || i > 0) && (order == "asc" && e.Index <= last || order == "desc" && e.Index >= last) {
					t.Fatalf("%s: index %d after %d", order, e.Index, last)
				}
				last = e.Index
				if strings.HasPrefix(e.ID, "walk-") {
					got = append(got, e.ID)
				}
			}
			if !p.HasMore {
				break
			}
			cursor = p.NextCursor
		}
		if order == "desc" {
			slices.Reverse(got)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: walked %d of the %d events, or out of order", order, len(got), len(want))
		}
	}
}

// TestQueryGRPCAndExport: the Query and Export RPCs.
func TestQueryGRPCAndExport(t *testing.T) {
	dir := t.TempDir()
	n, c := startTestNode(t, dir)
	ctx := context.Background()
	var evs []*pb.Event
	for i := range 700 {
		evs = append(evs, event(fmt.Sprint("u", i%7)))
	}
	if _, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()), withAdminToken(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	qc := pb.NewQueryClient(conn)
	resp, err := qc.Query(ctx, &pb.QueryRequest{Filter: &pb.QueryFilter{ActorId: "u3"}, Limit: 30, Descending: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Entries) != 30 || resp.Total != 100 || !resp.HasMore || resp.Entries[0].Index != 696 || resp.Entries[0].Event.Actor.Id != "u3" {
		t.Fatalf("query: %d entries, total %d, first %d", len(resp.Entries), resp.Total, resp.Entries[0].Index)
	}
	if _, err := qc.Query(ctx, &pb.QueryRequest{Filter: &pb.QueryFilter{ReceivedAfter: "soon"}}); err == nil || !strings.Contains(err.Error(), "filter.receivedAfter") {
		t.Fatalf("bad time: %v", err)
	}
	stream, err := qc.Export(ctx, &pb.ExportRequest{Filter: &pb.QueryFilter{ActorId: "u3"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Entries {
			got = append(got, e.Index)
		}
		if m.Cursor == "" {
			t.Fatal("export message without a cursor")
		}
	}
	if len(got) != 100 || got[0] != 3 || got[99] != 696 {
		t.Fatalf("export: %d entries %v…", len(got), got[:min(3, len(got))])
	}
}

// TestMetricsExposed: /metrics parses as Prometheus text and has the
// families the issue lists.
func TestMetricsExposed(t *testing.T) {
	dir := t.TempDir()
	n, gc := startTestNode(t, dir)
	c := newHTTPClient(t, n, dir)
	if _, err := gc.GetCheckpoint(context.Background(), &pb.GetCheckpointRequest{}); err != nil {
		t.Fatal(err)
	}
	c.postJSON("/api/audit/events", seedEvent, nil)
	c.postJSON("/api/audit/events/batch", seedBatch, nil)
	c.get("/api/audit/events?actorId=user-123", nil)
	code, _, raw := c.do(http.MethodGet, "/metrics", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"ledger_append_duration_seconds", "ledger_append_request_events", "ledger_commit_batch_events", "ledger_commit_duration_seconds",
		"ledger_events_appended_total", "ledger_tree_size", "ledger_checkpoint_age_seconds", "ledger_checkpoint_lag_entries",
		"ledger_query_duration_seconds", "ledger_query_rows_scanned", "ledger_http_requests_total", "ledger_http_request_duration_seconds",
		"ledger_grpc_requests_total", "go_goroutines", "process_cpu_seconds_total",
	} {
		if fams[name] == nil {
			t.Errorf("no metric %s", name)
		}
	}
	if f := fams["ledger_events_appended_total"]; f != nil && f.Metric[0].GetCounter().GetValue() != 3 {
		t.Errorf("events appended %v, want 3", f.Metric[0].GetCounter().GetValue())
	}
	if f := fams["ledger_tree_size"]; f != nil && f.Metric[0].GetGauge().GetValue() != 3 {
		t.Errorf("tree size %v, want 3", f.Metric[0].GetGauge().GetValue())
	}
	var sawCreated bool
	for _, m := range fams["ledger_http_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["route"] == "POST /api/audit/events" && labels["code"] == "201" {
			sawCreated = true
		}
	}
	if !sawCreated {
		t.Error("no ledger_http_requests_total{route=\"POST /api/audit/events\",code=\"201\"}")
	}
}
