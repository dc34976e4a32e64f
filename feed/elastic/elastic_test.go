package elastic_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/elastic"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/internal/sinktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeES implements the _bulk contract: NDJSON action/source pairs,
// "create" refusing an existing _id with 409, per-item statuses, and a
// top-level "errors" flag. It injects failures: whole requests answered
// 429 or 503, and items answered 429 on their first try.
type fakeES struct {
	mu       sync.Mutex
	docs     map[string]feed.Record
	created  map[string]int // successful creations per _id
	requests int
	auth     string
}

func newFakeES() *fakeES {
	return &fakeES{docs: map[string]feed.Record{}, created: map[string]int{}}
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	if f.auth != "" && r.Header.Get("Authorization") != f.auth {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	switch f.requests % 7 {
	case 2:
		http.Error(w, `{"error":{"type":"es_rejected_execution_exception"},"status":429}`, http.StatusTooManyRequests)
		return
	case 5:
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	type item map[string]any
	var items []map[string]item
	anyErr := false
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || len(a) != 1 {
			http.Error(w, "bad action line", http.StatusBadRequest)
			return
		}
		if !sc.Scan() {
			http.Error(w, "action without source", http.StatusBadRequest)
			return
		}
		op, ok := a["create"]
		if !ok || op.Index != "audit" {
			http.Error(w, "want create into audit", http.StatusBadRequest)
			return
		}
		var rec feed.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			http.Error(w, "bad source", http.StatusBadRequest)
			return
		}
		res := item{"_index": "audit", "_id": op.ID}
		idx, _ := strconv.Atoi(op.ID)
		switch {
		case op.ID != strconv.FormatUint(rec.Index, 10):
			http.Error(w, "_id is not the ledger index", http.StatusBadRequest)
			return
		case idx%13 == 5 && f.created[op.ID] == 0 && f.requests%2 == 1:
			res["status"] = 429
			res["error"] = map[string]any{"type": "es_rejected_execution_exception"}
			anyErr = true
		case f.docs[op.ID].ID != "":
			res["status"] = 409
			res["error"] = map[string]any{"type": "version_conflict_engine_exception"}
			anyErr = true
		default:
			f.docs[op.ID] = rec
			f.created[op.ID]++
			res["status"] = 201
		}
		items = append(items, map[string]item{"create": res})
	}
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": anyErr, "items": items})
}

func TestElasticsearchSink(t *testing.T) {
	es := newFakeES()
	es.auth = "ApiKey a2V5"
	srv := httptest.NewServer(es)
	defer srv.Close()
	t.Setenv("LEDGERD_TEST_ES_KEY", "a2V5")

	l := feedtest.New(t)
	d := sinktest.FastDelivery("es", 200)
	s, err := elastic.New(elastic.Config{Delivery: d, URLs: []string{srv.URL}, Index: "audit", APIKey: feed.Secret{Env: "LEDGERD_TEST_ES_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	m := sinktest.Run(t, l, elastic.Type, d, s)
	l.Append(t, "e", 0, 3000, 250)
	sinktest.WaitCursor(t, l, m, "es", 3000)

	es.mu.Lock()
	defer es.mu.Unlock()
	if len(es.docs) != 3000 {
		t.Fatalf("%d documents, want 3000", len(es.docs))
	}
	for i := 0; i < 3000; i++ {
		id := strconv.Itoa(i)
		if es.created[id] != 1 {
			t.Fatalf("document %s created %d times", id, es.created[id])
		}
		if es.docs[id].ID != fmt.Sprintf("e-%d", i) {
			t.Fatalf("document %s holds %+v", id, es.docs[id])
		}
	}
	if st := m.Status()[0]; st.Failed == 0 || st.LastError == "" {
		t.Errorf("no failures seen; the fake did not exercise retries: %+v", st)
	}
}

// A mapping conflict on one document is a rejection: with a dead-letter
// file the sink moves on.
func TestElasticsearchRejection(t *testing.T) {
	var mu sync.Mutex
	got := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var items []map[string]any
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			var a map[string]map[string]string
			json.Unmarshal(sc.Bytes(), &a)
			sc.Scan()
			id := a["create"]["_id"]
			if id == "3" {
				items = append(items, map[string]any{"create": map[string]any{"_id": id, "status": 400, "error": map[string]any{"type": "mapper_parsing_exception"}}})
				continue
			}
			got[id] = true
			items = append(items, map[string]any{"create": map[string]any{"_id": id, "status": 201}})
		}
		json.NewEncoder(w).Encode(map[string]any{"errors": true, "items": items})
	}))
	defer srv.Close()
	l := feedtest.New(t)
	d := sinktest.FastDelivery("es", 4)
	d.DeadLetterFile = t.TempDir() + "/dead.ndjson"
	s, err := elastic.New(elastic.Config{Delivery: d, URLs: []string{srv.URL}, Index: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	m := sinktest.Run(t, l, elastic.Type, d, s)
	l.Append(t, "e", 0, 10, 10)
	sinktest.WaitCursor(t, l, m, "es", 10)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 9 || got["3"] {
		t.Errorf("indexed %v", got)
	}
	if st := m.Status()[0]; st.DeadLettered != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestElasticsearchBody(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 2, 2)
	s, err := elastic.New(elastic.Config{Delivery: feed.Delivery{Name: "es"}, URLs: []string{"http://127.0.0.1:9"}, Index: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub := feed.Subscribe(l.Store, 0, feed.Options{})
	items, err := sub.NextBatch(t.Context(), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(s.Body(items), []byte("\n")), []byte("\n"))
	if len(lines) != 4 || string(lines[0]) != `{"create":{"_index":"audit","_id":"0"}}` || string(lines[2]) != `{"create":{"_index":"audit","_id":"1"}}` {
		t.Fatalf("body:\n%s", bytes.Join(lines, []byte("\n")))
	}
	var doc map[string]any
	if err := json.Unmarshal(lines[1], &doc); err != nil || doc["@timestamp"] != doc["receivedAt"] || doc["index"] != 0.0 {
		t.Fatalf("document %s: %v", lines[1], err)
	}
}

func TestElasticsearchConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  elastic.Config
	}{
		{"no urls", elastic.Config{Delivery: feed.Delivery{Name: "x"}, Index: "i"}},
		{"no index", elastic.Config{Delivery: feed.Delivery{Name: "x"}, URLs: []string{"http://h"}}},
		{"bad url", elastic.Config{Delivery: feed.Delivery{Name: "x"}, URLs: []string{"h:9200"}, Index: "i"}},
		{"two auths", elastic.Config{Delivery: feed.Delivery{Name: "x"}, URLs: []string{"http://h"}, Index: "i", Username: "u", APIKey: feed.Secret{Env: "X"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := elastic.New(tc.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
