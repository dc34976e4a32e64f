package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/query"
)

// eventJSON is an event as the HTTP API shows it: the seed's shape, plus
// what the ledger stamped and proves. Hashes and leaves are standard
// base64 (as ledgerctl prints them), the HMAC signature hex (as the
// audit service did).
type eventJSON struct {
	ID        string       `json:"id"`
	Timestamp string       `json:"timestamp,omitempty"`
	Actor     actorJSON    `json:"actor"`
	Action    actionJSON   `json:"action"`
	Context   *contextJSON `json:"context,omitempty"`
	Version   string       `json:"version,omitempty"`

	Index      uint64 `json:"index"`
	LeafHash   []byte `json:"leafHash"`
	Leaf       []byte `json:"leaf"`
	ReceivedAt string `json:"receivedAt"`
	KeyID      string `json:"keyId"`
	Signature  string `json:"signature"`
}

type actorJSON struct {
	ID        string `json:"id"`
	Type      string `json:"type,omitempty"`
	IP        string `json:"ip,omitempty"`
	Session   string `json:"session,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

type actionJSON struct {
	Type       string            `json:"type"`
	Resource   string            `json:"resource"`
	ResourceID string            `json:"resourceId,omitempty"`
	Result     string            `json:"result"`
	Duration   int64             `json:"duration,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

type contextJSON struct {
	RequestID   string `json:"requestId,omitempty"`
	Environment string `json:"environment,omitempty"`
	Application string `json:"application,omitempty"`
	Version     string `json:"version,omitempty"`
}

func entryJSON(e *pb.Entry) eventJSON {
	ev := e.GetEvent()
	out := eventJSON{
		ID: ev.GetId(), Timestamp: ev.GetTimestamp(), Version: ev.GetVersion(),
		Index: e.Index, LeafHash: e.LeafHash, Leaf: e.Leaf, ReceivedAt: e.ReceivedAt, KeyID: e.KeyId,
		Signature: hex.EncodeToString(e.Signature),
	}
	if a := ev.GetActor(); a != nil {
		out.Actor = actorJSON{a.Id, a.Type, a.Ip, a.Session, a.UserAgent}
	}
	if a := ev.GetAction(); a != nil {
		out.Action = actionJSON{a.Type, a.Resource, a.ResourceId, a.Result, a.Duration, a.Metadata}
	}
	if c := ev.GetContext(); c != nil {
		out.Context = &contextJSON{c.RequestId, c.Environment, c.Application, c.Version}
	}
	return out
}

// proofJSON and consistencyJSON are the proofs as ledgerctl prints them.
type proofJSON struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"treeSize"`
	LeafHash []byte   `json:"leafHash"`
	Hashes   [][]byte `json:"hashes"`
}

type consistencyJSON struct {
	FromSize uint64   `json:"fromSize"`
	ToSize   uint64   `json:"toSize"`
	Hashes   [][]byte `json:"hashes"`
}

func inclusionJSON(p *pb.InclusionProof) *proofJSON {
	if p == nil {
		return nil
	}
	return &proofJSON{p.Index, p.TreeSize, p.LeafHash, nonNil(p.Hashes)}
}

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}

type appendJSON struct {
	Success    bool       `json:"success"`
	EventID    string     `json:"eventId"`
	Index      uint64     `json:"index"`
	LeafHash   []byte     `json:"leafHash"`
	Signature  string     `json:"signature"`
	KeyID      string     `json:"keyId"`
	Duplicate  bool       `json:"duplicate"`
	Stored     bool       `json:"stored"`
	Streamed   bool       `json:"streamed"`
	Checkpoint string     `json:"checkpoint,omitempty"`
	Inclusion  *proofJSON `json:"inclusionProof,omitempty"`
}

type resultJSON struct {
	EventID   string     `json:"eventId"`
	Index     uint64     `json:"index"`
	LeafHash  []byte     `json:"leafHash"`
	Signature string     `json:"signature"`
	Duplicate bool       `json:"duplicate,omitempty"`
	Inclusion *proofJSON `json:"inclusionProof,omitempty"`
}

type batchJSON struct {
	Success         bool         `json:"success"`
	BatchID         string       `json:"batchId,omitempty"`
	EventsProcessed int          `json:"eventsProcessed"`
	Checksum        string       `json:"checksum"`
	FirstIndex      uint64       `json:"firstIndex"`
	Streamed        bool         `json:"streamed"`
	Checkpoint      string       `json:"checkpoint,omitempty"`
	Results         []resultJSON `json:"results"`
}

// boolParam reads an optional boolean query parameter.
func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &ledger.FieldError{Field: name, Reason: fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

// onlyParams rejects query parameters other than allowed: a misspelt
// filter must not silently widen a search.
func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return &ledger.FieldError{Field: k, Reason: fmt.Sprintf("unknown query parameter; known: %s", strings.Join(allowed, ", "))}
		}
	}
	return nil
}

// appendBody reads what both append routes take: the optional "wait"
// parameter (no other) and a JSON body of at most limit bytes.
func appendBody(w http.ResponseWriter, r *http.Request, limit int64) (wait bool, body []byte, err error) {
	q := r.URL.Query()
	if err := onlyParams(q, "wait"); err != nil {
		return false, nil, err
	}
	if wait, err = boolParam(q, "wait"); err != nil {
		return false, nil, err
	}
	body, err = readJSONBody(w, r, limit)
	return wait, body, err
}

func (a *httpAPI) postEvent(w http.ResponseWriter, r *http.Request) {
	wait, body, err := appendBody(w, r, maxEventBody)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ev, err := ParseEventJSON(body)
	if err != nil {
		a.fail(w, r, jsonFieldError("", err))
		return
	}
	start := time.Now()
	res, cp, err := a.o.Ledger.append(r.Context(), []ledger.Event{EventFromProto(ev)}, wait)
	if a.o.Metrics != nil {
		a.o.Metrics.observeAppend("http", 1, time.Since(start), err)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := appendJSON{Success: true, EventID: res[0].Id, Index: res[0].Index, LeafHash: res[0].LeafHash,
		Signature: hex.EncodeToString(res[0].Signature), KeyID: res[0].KeyId, Duplicate: res[0].Duplicate,
		Stored: true, Streamed: a.o.Ledger.streamed(), Inclusion: inclusionJSON(res[0].Inclusion)}
	if cp != nil {
		out.Checkpoint = string(cp.Note)
	}
	status := http.StatusCreated
	if res[0].Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

func (a *httpAPI) postBatch(w http.ResponseWriter, r *http.Request) {
	wait, body, err := appendBody(w, r, maxBatchBody)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req, err := parseBatchJSON(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(req.Events) == 0 {
		a.fail(w, r, &ledger.FieldError{Field: "events", Reason: "required: a non-empty array of events"})
		return
	}
	if len(req.Events) > ledger.MaxBatchEvents {
		a.fail(w, r, fmt.Errorf("%w: %d events in one batch; at most %d", ledger.ErrTooLarge, len(req.Events), ledger.MaxBatchEvents))
		return
	}
	events := make([]ledger.Event, len(req.Events))
	for i, raw := range req.Events {
		ev, err := ParseEventJSON(raw)
		if err != nil {
			a.fail(w, r, jsonFieldError(fmt.Sprintf("events[%d].", i), err))
			return
		}
		events[i] = EventFromProto(ev)
	}
	start := time.Now()
	res, cp, err := a.o.Ledger.append(r.Context(), events, wait || req.WaitCheckpoint)
	if a.o.Metrics != nil {
		a.o.Metrics.observeAppend("http", len(events), time.Since(start), err)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := batchJSON{Success: true, BatchID: req.BatchID, EventsProcessed: len(res), Checksum: hex.EncodeToString(BatchChecksum(res)),
		FirstIndex: res[0].Index, Streamed: a.o.Ledger.streamed(), Results: make([]resultJSON, len(res))}
	fresh := false
	for i, x := range res {
		out.Results[i] = resultJSON{x.Id, x.Index, x.LeafHash, hex.EncodeToString(x.Signature), x.Duplicate, inclusionJSON(x.Inclusion)}
		fresh = fresh || !x.Duplicate
	}
	if cp != nil {
		out.Checkpoint = string(cp.Note)
	}
	status := http.StatusCreated
	if !fresh {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

type batchRequest struct {
	Events         []json.RawMessage
	BatchID        string
	WaitCheckpoint bool
}

// parseBatchJSON reads {"events":[…],"batchId":"…","waitCheckpoint":…}.
// Keys must be spelt exactly (encoding/json alone would take "batchID"
// or "EVENTS"); each event is parsed by ParseEventJSON afterwards.
func parseBatchJSON(body []byte) (batchRequest, error) {
	var req batchRequest
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&top); err != nil {
		return req, &ledger.FieldError{Field: "body", Reason: "batch JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return req, &ledger.FieldError{Field: "body", Reason: "trailing data after the JSON object"}
	}
	for k, v := range top {
		var err error
		switch k {
		case "events":
			err = json.Unmarshal(v, &req.Events)
		case "batchId":
			err = json.Unmarshal(v, &req.BatchID)
		case "waitCheckpoint":
			err = json.Unmarshal(v, &req.WaitCheckpoint)
		default:
			return req, &ledger.FieldError{Field: k, Reason: fmt.Sprintf("unknown field %q: a batch has events, batchId and waitCheckpoint (unknown fields are rejected so that a misspelt field never drops audit data silently)", k)}
		}
		if err != nil {
			return req, &ledger.FieldError{Field: k, Reason: strings.TrimPrefix(err.Error(), "json: ")}
		}
	}
	return req, nil
}

// queryParams maps the HTTP filter parameters to query.Filter fields.
var queryParams = map[string]func(f *query.Filter) *string{
	"actorId":     func(f *query.Filter) *string { return &f.ActorID },
	"actorType":   func(f *query.Filter) *string { return &f.ActorType },
	"actorIp":     func(f *query.Filter) *string { return &f.ActorIP },
	"actionType":  func(f *query.Filter) *string { return &f.ActionType },
	"resource":    func(f *query.Filter) *string { return &f.Resource },
	"resourceId":  func(f *query.Filter) *string { return &f.ResourceID },
	"result":      func(f *query.Filter) *string { return &f.Result },
	"application": func(f *query.Filter) *string { return &f.Application },
	"environment": func(f *query.Filter) *string { return &f.Environment },
	"requestId":   func(f *query.Filter) *string { return &f.RequestID },
}

var knownQueryParams = []string{"startTime", "endTime", "timeField", "limit", "cursor", "order",
	"actorId", "actorType", "actorIp", "actionType", "resource", "resourceId", "result", "application", "environment", "requestId"}

// parseQuery reads GET /api/audit/events parameters. startTime and
// endTime bound the server receive time (startTime <= t < endTime), or
// the event's own timestamp with timeField=timestamp.
func parseQuery(q url.Values) (query.Request, error) {
	var req query.Request
	if err := onlyParams(q, knownQueryParams...); err != nil {
		return req, err
	}
	for k, v := range q {
		if len(v) > 1 {
			return req, &ledger.FieldError{Field: k, Reason: "given more than once"}
		}
	}
	for name, field := range queryParams {
		*field(&req.Filter) = q.Get(name)
	}
	from, to := &req.Filter.ReceivedFrom, &req.Filter.ReceivedTo
	switch tf := q.Get("timeField"); tf {
	case "", "received":
	case "timestamp":
		from, to = &req.Filter.TimestampFrom, &req.Filter.TimestampTo
	default:
		return req, &ledger.FieldError{Field: "timeField", Reason: fmt.Sprintf("%q is not received or timestamp", tf)}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"startTime", from}, {"endTime", to}} {
		if v := q.Get(t.name); v != "" {
			tv, err := ParseTime(v)
			if err != nil {
				return req, &ledger.FieldError{Field: t.name, Reason: err.Error()}
			}
			*t.dst = tv
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > query.MaxLimit {
			return req, &ledger.FieldError{Field: "limit", Reason: fmt.Sprintf("%q is not a number from 1 to %d", v, query.MaxLimit)}
		}
		req.Limit = n
	}
	switch o := q.Get("order"); o {
	case "", "asc":
	case "desc":
		req.Descending = true
	default:
		return req, &ledger.FieldError{Field: "order", Reason: fmt.Sprintf("%q is not asc or desc", o)}
	}
	req.Cursor = q.Get("cursor")
	return req, nil
}

type pageJSON struct {
	Events         []eventJSON `json:"events"`
	Total          uint64      `json:"total"`
	TotalEstimated bool        `json:"totalEstimated"`
	Page           int         `json:"page"`
	HasMore        bool        `json:"hasMore"`
	NextCursor     string      `json:"nextCursor,omitempty"`
	TreeSize       uint64      `json:"treeSize"`
}

// queryTimeout bounds one HTTP query page.
const queryTimeout = 30 * time.Second

func (a *httpAPI) getEvents(w http.ResponseWriter, r *http.Request) {
	if a.o.Query == nil {
		a.fail(w, r, fmt.Errorf("%w: queries are not enabled on this node", ledger.ErrClosed))
		return
	}
	req, err := parseQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	s := a.o.Query
	page, err := s.eng.Query(ctx, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := pageJSON{Events: make([]eventJSON, 0, len(page.Rows)), Total: page.Total, TotalEstimated: page.TotalEstimated,
		Page: page.Page, HasMore: page.HasMore, NextCursor: page.NextCursor, TreeSize: page.TreeSize}
	for _, row := range page.Rows {
		e, err := s.view.entry(ctx, row.Index, row.Leaf)
		if err != nil {
			a.fail(w, r, fmt.Errorf("%w: entry %d: %v", ledger.ErrCorrupt, row.Index, err))
			return
		}
		out.Events = append(out.Events, entryJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *httpAPI) getEvent(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.o.Ledger.entry(r.Context(), &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Id{Id: r.PathValue("id")}})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, entryJSON(e))
}

func (a *httpAPI) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		a.fail(w, r, err)
		return
	}
	cp, err := a.o.Ledger.checkpoint(r.Context(), false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if vk := a.o.Ledger.verifierKey; vk != "" {
		w.Header().Set("Ledger-Verifier-Key", vk)
	}
	w.Write(cp.Note)
}

// uintParam reads a required (or optional, when def is given) unsigned
// integer query parameter.
func uintParam(q url.Values, name string, required bool) (uint64, error) {
	v := q.Get(name)
	if v == "" {
		if required {
			return 0, &ledger.FieldError{Field: name, Reason: "required"}
		}
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, &ledger.FieldError{Field: name, Reason: fmt.Sprintf("%q is not a non-negative integer", v)}
	}
	return n, nil
}

func (a *httpAPI) getInclusion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "index", "size", "leafHash"); err != nil {
		a.fail(w, r, err)
		return
	}
	req := &pb.GetInclusionProofRequest{}
	if h := q.Get("leafHash"); h != "" {
		if q.Get("index") != "" {
			a.fail(w, r, &ledger.FieldError{Field: "leafHash", Reason: "give index or leafHash, not both"})
			return
		}
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			a.fail(w, r, &ledger.FieldError{Field: "leafHash", Reason: "not standard base64"})
			return
		}
		req.Key = &pb.GetInclusionProofRequest_LeafHash{LeafHash: b}
	} else {
		idx, err := uintParam(q, "index", true)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		req.Key = &pb.GetInclusionProofRequest_Index{Index: idx}
	}
	size, err := uintParam(q, "size", false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req.TreeSize = size
	resp, err := a.o.Ledger.inclusion(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inclusionJSON(resp.Proof))
}

func (a *httpAPI) getConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "from", "to"); err != nil {
		a.fail(w, r, err)
		return
	}
	from, err := uintParam(q, "from", true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	to, err := uintParam(q, "to", false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp, err := a.o.Ledger.consistency(r.Context(), &pb.GetConsistencyProofRequest{FromSize: from, ToSize: to})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := resp.Proof
	writeJSON(w, http.StatusOK, consistencyJSON{p.FromSize, p.ToSize, nonNil(p.Hashes)})
}

// describeHTTPQuery and describeHTTPEntry say what a self-audited HTTP
// read touched.
func describeHTTPQuery(req any) string {
	if r, ok := req.(*http.Request); ok {
		return auth.RedactQuery(r.URL.RawQuery) // search terms may be personal data
	}
	return ""
}

func describeHTTPEntry(req any) string {
	if r, ok := req.(*http.Request); ok {
		return "id " + r.PathValue("id")
	}
	return ""
}
