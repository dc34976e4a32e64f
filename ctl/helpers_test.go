package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seedEvent is the example event of the audit service's README
// (POST /api/audit/events), verbatim.
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

// oneLine compacts a JSON document to one line (for --event and NDJSON).
func oneLine(t testing.TB, doc string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ndjson returns n events, one per line, with ids prefix-0 … prefix-(n-1).
func ndjson(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"%s-%d","actor":{"id":"user-%d","type":"user"},"action":{"type":"read","resource":"document","resourceId":"doc-%d","result":"success","duration":%d,"metadata":{"k":"v%d"}}}`+"\n", prefix, i, i%7, i, i, i)
	}
	return b.String()
}

// testNode is a real ledgerd (Pebble in a temp dir, gRPC on 127.0.0.1)
// that can be stopped and started again on the same data directory.
type testNode struct {
	t     testing.TB
	dir   string
	n     *node.Node
	token string // the initial admin token the node generated
}

func startNode(t *testing.T) *testNode {
	t.Helper()
	return startNodeTB(t)
}

func startNodeB(b *testing.B) *testNode {
	b.Helper()
	return startNodeTB(b)
}

func startNodeTB(t testing.TB) *testNode {
	t.Helper()
	tn := &testNode{t: t, dir: t.TempDir()}
	tn.start()
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) start() {
	tn.t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = tn.dir
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "test.example/ledger"
	cfg.Security.Banner = io.Discard
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.n = n
	tok, err := os.ReadFile(filepath.Join(tn.dir, node.AdminTokenFile))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.token = strings.TrimSpace(string(tok))
}

func (tn *testNode) stop() {
	if tn.n != nil {
		if err := tn.n.Close(context.Background()); err != nil {
			tn.t.Error(err)
		}
		tn.n = nil
	}
}

func (tn *testNode) vkey() string { return tn.n.Keys().VerifierKey }

// result is one in-process run of ledgerctl.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// ctl runs ledgerctl against the node, with the admin token, stdin and
// args; the environment is empty so that the caller's LEDGER_* never
// leak in.
func (tn *testNode) ctl(stdin string, args ...string) result {
	tn.t.Helper()
	return runCtl(stdin, append([]string{"--addr", tn.n.GRPCAddr(), "--token", tn.token}, args...)...)
}

func runCtl(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// mustCtl runs ledgerctl and fails the test unless it exits 0.
func (tn *testNode) mustCtl(stdin string, args ...string) string {
	tn.t.Helper()
	r := tn.ctl(stdin, args...)
	if r.code != 0 {
		tn.t.Fatalf("ledgerctl %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// lines splits NDJSON output and decodes each line into a T.
func lines[T any](t testing.TB, out string) []T {
	t.Helper()
	var res []T
	for l := range strings.Lines(out) {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("bad output line %q: %v", l, err)
		}
		res = append(res, v)
	}
	return res
}

// writeFile writes content into a new file of the test's temp dir.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantFailure checks a run exited with code and one "ledgerctl: " line
// on stderr containing each of want.
func wantFailure(t testing.TB, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
	if !strings.HasPrefix(r.stderr, "ledgerctl: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("want one \"ledgerctl: \" line on stderr, got %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("stderr %q does not contain %q", r.stderr, w)
		}
	}
}
