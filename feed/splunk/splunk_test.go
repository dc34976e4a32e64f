package splunk_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/feed/internal/sinktest"
	"github.com/auditledger/ledgerd/feed/splunk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHEC implements the HEC event and ack endpoints: token auth,
// concatenated event objects, 503 "server is busy" and 429 answers that
// index nothing, and acknowledgements that turn true only after a few
// polls.
type fakeHEC struct {
	mu       sync.Mutex
	indexed  map[string]int // ledger_index → times indexed
	requests int
	nextAck  int64
	acks     map[int64]int // ackId → polls left before true
	channels map[string]bool
}

func newFakeHEC() *fakeHEC {
	return &fakeHEC{indexed: map[string]int{}, acks: map[int64]int{}, channels: map[string]bool{}}
}

func (f *fakeHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Splunk s3cret-token" {
		reply(http.StatusForbidden, map[string]any{"text": "Invalid token", "code": 4})
		return
	}
	ch := r.Header.Get("X-Splunk-Request-Channel")
	switch r.URL.Path {
	case "/services/collector/event":
		f.requests++
		switch f.requests % 5 {
		case 2:
			reply(http.StatusServiceUnavailable, map[string]any{"text": "Server is busy", "code": 9})
			return
		case 4:
			reply(http.StatusTooManyRequests, map[string]any{"text": "Too many requests", "code": 9})
			return
		}
		dec := json.NewDecoder(r.Body)
		var batch []string
		for {
			var ev struct {
				Time   string            `json:"time"`
				Event  feed.Record       `json:"event"`
				Fields map[string]string `json:"fields"`
			}
			err := dec.Decode(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || ev.Time == "" || ev.Fields["ledger_index"] != strconv.FormatUint(ev.Event.Index, 10) {
				reply(http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": len(batch)})
				return
			}
			batch = append(batch, ev.Fields["ledger_index"])
		}
		for _, id := range batch {
			f.indexed[id]++
		}
		f.nextAck++
		f.acks[f.nextAck] = 2
		f.channels[ch] = true
		reply(http.StatusOK, map[string]any{"text": "Success", "code": 0, "ackId": f.nextAck})
	case "/services/collector/ack":
		if r.URL.Query().Get("channel") != ch || !f.channels[ch] {
			reply(http.StatusBadRequest, map[string]any{"text": "Invalid channel", "code": 11})
			return
		}
		var req struct{ Acks []int64 }
		json.NewDecoder(r.Body).Decode(&req)
		out := map[string]bool{}
		for _, id := range req.Acks {
			if f.acks[id] > 0 {
				f.acks[id]--
			}
			out[strconv.FormatInt(id, 10)] = f.acks[id] == 0
		}
		reply(http.StatusOK, map[string]any{"acks": out})
	default:
		http.NotFound(w, r)
	}
}

func TestSplunkSink(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprint("ack=", ack), func(t *testing.T) {
			hec := newFakeHEC()
			srv := httptest.NewServer(hec)
			defer srv.Close()
			tokFile := filepath.Join(t.TempDir(), "token")
			os.WriteFile(tokFile, []byte("s3cret-token\n"), 0o600)

			l := feedtest.New(t)
			d := sinktest.FastDelivery("hec", 300)
			s, err := splunk.New(splunk.Config{Delivery: d, URL: srv.URL, Token: feed.Secret{File: tokFile}, Index: "audit", Ack: ack, AckPoll: feed.Duration(time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			m := sinktest.Run(t, l, splunk.Type, d, s)
			l.Append(t, "e", 0, 2500, 500)
			sinktest.WaitCursor(t, l, m, "hec", 2500)
			hec.mu.Lock()
			defer hec.mu.Unlock()
			for i := 0; i < 2500; i++ {
				if n := hec.indexed[strconv.Itoa(i)]; n != 1 {
					t.Fatalf("entry %d indexed %d times", i, n)
				}
			}
			if st := m.Status()[0]; st.Failed == 0 {
				t.Errorf("the fake's 503 and 429 answers were not seen: %+v", st)
			}
		})
	}
}

// A wrong token fails every attempt; nothing is lost once it is fixed
// (here: a new sink, as after a config reload and restart).
func TestSplunkBadToken(t *testing.T) {
	hec := newFakeHEC()
	srv := httptest.NewServer(hec)
	defer srv.Close()
	t.Setenv("HEC_TOKEN", "wrong")
	l := feedtest.New(t)
	d := sinktest.FastDelivery("hec", 100)
	s, err := splunk.New(splunk.Config{Delivery: d, URL: srv.URL, Token: feed.Secret{Env: "HEC_TOKEN"}})
	if err != nil {
		t.Fatal(err)
	}
	m := sinktest.Run(t, l, splunk.Type, d, s)
	l.Append(t, "e", 0, 10, 10)
	feedtest.WaitFor(t, 10*time.Second, func() string { return "no error" }, func() bool { return m.Status()[0].LastError != "" })
	if c, _, _ := feed.ReadCursor(l.Store, "hec"); c != 0 {
		t.Fatalf("cursor moved to %d with a wrong token", c)
	}
}

func TestSplunkConfig(t *testing.T) {
	for _, c := range []splunk.Config{
		{Delivery: feed.Delivery{Name: "x"}, URL: "http://h:8088"},
		{Delivery: feed.Delivery{Name: "x"}, URL: "h:8088", Token: feed.Secret{Env: "X"}},
	} {
		if _, err := splunk.New(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
