package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/webhook"
	"github.com/auditledger/ledgerd/node"
)

func TestTail(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("t", 30), "append", "--batch-size", "10")

	type line struct {
		Index     uint64
		Leaf      []byte
		Event     struct{ ID string }
		Inclusion *inclusionJSON
	}
	got := lines[line](t, tn.mustCtl("", "tail", "--from", "25"))
	if len(got) != 5 || got[0].Index != 25 || got[4].Index != 29 || got[0].Event.ID != "t-25" || got[0].Inclusion != nil {
		t.Fatalf("tail --from 25: %+v", got)
	}

	// With --key every proof is verified; lines carry proof and checkpoint.
	// A proven feed stops at the newest checkpoint, which the signer makes
	// a few milliseconds after the append: wait until it covers all 30.
	if _, err := tn.n.Ledger().WaitCheckpoint(context.Background(), 30); err != nil {
		t.Fatal(err)
	}
	out := tn.mustCtl("", "tail", "--key", tn.vkey())
	withProof := lines[tailLine](t, out)
	if len(withProof) != 30 || withProof[29].Inclusion == nil || withProof[29].Checkpoint == "" {
		t.Fatalf("tail --key: %d lines, last %+v", len(withProof), withProof[len(withProof)-1])
	}

	// A wrong key fails verification (exit 1).
	other := startNode(t)
	wantFailure(t, tn.ctl("", "tail", "--key", other.vkey()), ExitFailed, "checkpoint")
}

// syncBuffer is a bytes.Buffer safe to read while ledgerctl writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTailFollow(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("f", 3), "append")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--addr", tn.n.GRPCAddr(), "--token", tn.token, "tail", "--follow", "--proof"}, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	}()
	tn.mustCtl(ndjson("g", 4), "append")
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "\n") < 7 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail --follow exit %d: %s", code, errb.String())
	}
	got := lines[tailLine](t, out.String())
	if len(got) != 7 || got[6].Index != 6 || got[6].Inclusion == nil {
		t.Fatalf("tail --follow: %d lines", len(got))
	}
}

func TestSinksStatus(t *testing.T) {
	// No sinks configured: not healthy, an empty list; --check fails.
	tn := startNode(t)
	out := tn.mustCtl("", "sinks", "status")
	if strings.TrimSpace(out) != `{"healthy":false,"sinks":[]}` {
		t.Fatalf("sinks status without sinks: %s", out)
	}
	wantFailure(t, tn.ctl("", "sinks", "status", "--check"), ExitFailed, "not healthy")

	// A node with a webhook sink delivers what is appended.
	var mu sync.Mutex
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify([]byte("0123456789abcdef"), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		json.Unmarshal(body, &p)
		mu.Lock()
		got += len(p.Events)
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("CTL_TEST_HOOK_SECRET", "0123456789abcdef")
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "test.example/ledger"
	cfg.Security.Banner = io.Discard
	cfg.Sinks.Webhook = []webhook.Config{{Delivery: feed.Delivery{Name: "hook"}, URL: srv.URL, Secret: feed.Secret{Env: "CTL_TEST_HOOK_SECRET"}}}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	addr := n.GRPCAddr()
	runCtl := func(stdin string, args ...string) result {
		return runCtl(stdin, append([]string{"--token", strings.TrimSpace(string(tok))}, args...)...)
	}
	if r := runCtl(ndjson("s", 20), "--addr", addr, "append"); r.code != 0 {
		t.Fatal(r)
	}
	type status struct {
		Healthy bool
		Sinks   []sinkJSON
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runCtl("", "--addr", addr, "sinks", "status", "--check")
		var st status
		json.Unmarshal([]byte(r.stdout), &st)
		if r.code == 0 && len(st.Sinks) == 1 && st.Sinks[0].Cursor == 20 {
			s := st.Sinks[0]
			if s.Name != "hook" || s.Type != "webhook" || !s.Running || s.LagEvents != 0 || s.Delivered != 20 {
				t.Fatalf("status %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink did not catch up: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 20 {
		t.Fatalf("receiver got %d events, want 20", got)
	}
}
