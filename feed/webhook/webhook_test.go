package webhook_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/internal/sinktest"
	"github.com/auditledger/ledgerd/feed/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "0123456789abcdef-webhook-secret"

// receiver verifies every request's signature and answers 500 to the
// first failFirst requests, then 200.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	requests  int
	got       map[uint64]int
	badSig    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if err := webhook.Verify([]byte(secret), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		rc.badSig++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.Header.Get("X-Tenant") != "acme" {
		http.Error(w, "missing configured header", http.StatusBadRequest)
		return
	}
	if rc.requests <= rc.failFirst {
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.Sink != "hook" {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	for _, raw := range p.Events {
		var rec feed.Record
		json.Unmarshal(raw, &rec)
		rc.got[rec.Index]++
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestWebhookSink(t *testing.T) {
	rc := &receiver{failFirst: 25, got: map[uint64]int{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t.Setenv("HOOK_SECRET", secret)
	l := feedtest.New(t)
	d := sinktest.FastDelivery("hook", 100)
	s, err := webhook.New(webhook.Config{Delivery: d, URL: srv.URL, Secret: feed.Secret{Env: "HOOK_SECRET"}, Headers: map[string]string{"X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	m := sinktest.Run(t, l, webhook.Type, d, s)
	l.Append(t, "e", 0, 1000, 100)
	sinktest.WaitCursor(t, l, m, "hook", 1000)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := uint64(0); i < 1000; i++ {
		if rc.got[i] != 1 {
			t.Fatalf("entry %d received %d times", i, rc.got[i])
		}
	}
	if rc.badSig != 0 || rc.requests <= 25 {
		t.Errorf("%d bad signatures, %d requests", rc.badSig, rc.requests)
	}
	if st := m.Status()[0]; st.Failed == 0 {
		t.Errorf("500s not seen: %+v", st)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"sink":"x","events":[]}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := webhook.Sign([]byte(secret), ts, body)
	tests := []struct {
		name    string
		secret  string
		ts, sig string
		body    string
		now     time.Time
		wantErr error
	}{
		{"good", secret, ts, sig, string(body), now, nil},
		{"good among several", secret, ts, "v1=00, " + sig, string(body), now, nil},
		{"body changed", secret, ts, sig, string(body) + " ", now, webhook.ErrBadSignature},
		{"wrong secret", secret + "x", ts, sig, string(body), now, webhook.ErrBadSignature},
		{"timestamp changed", secret, strconv.FormatInt(now.Unix()+1, 10), sig, string(body), now, webhook.ErrBadSignature},
		{"replayed later", secret, ts, sig, string(body), now.Add(10 * time.Minute), webhook.ErrStale},
		{"from the future", secret, ts, sig, string(body), now.Add(-10 * time.Minute), webhook.ErrStale},
		{"no timestamp", secret, "", sig, string(body), now, webhook.ErrStale},
		{"no signature", secret, ts, "", string(body), now, webhook.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify([]byte(tc.secret), tc.ts, tc.sig, []byte(tc.body), tc.now, 5*time.Minute)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestWebhookConfig(t *testing.T) {
	t.Setenv("SHORT", "short")
	for name, c := range map[string]webhook.Config{
		"no secret":       {Delivery: feed.Delivery{Name: "x"}, URL: "http://h"},
		"short secret":    {Delivery: feed.Delivery{Name: "x"}, URL: "http://h", Secret: feed.Secret{Env: "SHORT"}},
		"bad url":         {Delivery: feed.Delivery{Name: "x"}, URL: "ftp://h", Secret: feed.Secret{Env: "SHORT"}},
		"reserved header": {Delivery: feed.Delivery{Name: "x"}, URL: "http://h", Secret: feed.Secret{Env: "SHORT"}, Headers: map[string]string{"x-ledger-signature": "v"}},
	} {
		if _, err := webhook.New(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
