package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/metadata"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

type appendOut struct {
	Index      uint64         `json:"index"`
	ID         string         `json:"id"`
	LeafHash   []byte         `json:"leafHash"`
	Signature  []byte         `json:"signature"`
	Duplicate  bool           `json:"duplicate"`
	Inclusion  *inclusionJSON `json:"inclusion"`
	Checkpoint string         `json:"checkpoint"`
}

type getOut struct {
	Index      uint64          `json:"index"`
	Leaf       []byte          `json:"leaf"`
	Event      json.RawMessage `json:"event"`
	LeafHash   []byte          `json:"leafHash"`
	ReceivedAt string          `json:"receivedAt"`
	KeyID      string          `json:"keyId"`
	Signature  []byte          `json:"signature"`
}

func TestAppendGetCheckpointPubkey(t *testing.T) {
	tn := startNode(t)

	// One event with --event: the seed's example.
	one := lines[appendOut](t, tn.mustCtl("", "append", "--event", oneLine(t, seedEvent)))
	if len(one) != 1 || one[0].Index != 0 || one[0].ID != "evt-123" || len(one[0].LeafHash) != 32 || len(one[0].Signature) != 32 {
		t.Fatalf("append --event: %+v", one)
	}
	// The contract's four fields come first, in order.
	raw := tn.mustCtl("", "append", "--event", oneLine(t, strings.Replace(seedEvent, "evt-123", "evt-124", 1)))
	if !strings.HasPrefix(raw, `{"index":1,"id":"evt-124","leafHash":"`) || !strings.Contains(raw, `","signature":"`) {
		t.Fatalf("append output shape: %s", raw)
	}

	// NDJSON on stdin, several AppendBatch calls (batch size 7), blank
	// lines skipped, order kept.
	in := ndjson("bulk", 30)
	in = strings.Replace(in, "\n", "\n\n", 3)
	got := lines[appendOut](t, tn.mustCtl(in, "append", "--batch-size", "7"))
	if len(got) != 30 {
		t.Fatalf("got %d lines, want 30", len(got))
	}
	for i, l := range got {
		if l.Index != uint64(2+i) || l.ID != "bulk-"+strconv.Itoa(i) || l.Duplicate {
			t.Fatalf("line %d: %+v", i, l)
		}
	}

	// Appending an existing id is idempotent and says so.
	dup := lines[appendOut](t, tn.mustCtl(oneLine(t, seedEvent)+"\n", "append"))
	if len(dup) != 1 || dup[0].Index != 0 || !dup[0].Duplicate || !bytes.Equal(dup[0].LeafHash, one[0].LeafHash) {
		t.Fatalf("duplicate append: %+v", dup)
	}

	// get by index and by id give the same entry, with the seed's fields.
	byIndex := tn.mustCtl("", "get", "--index", "0")
	byID := tn.mustCtl("", "get", "--id", "evt-123")
	if byIndex != byID {
		t.Fatalf("get by index %s\nget by id %s", byIndex, byID)
	}
	if !strings.HasPrefix(byIndex, `{"index":0,"leaf":"`) {
		t.Fatalf("get output shape: %s", byIndex)
	}
	g := lines[getOut](t, byIndex)[0]
	if h := merkle.LeafHash(g.Leaf); !bytes.Equal(h[:], one[0].LeafHash) || !bytes.Equal(g.LeafHash, h[:]) {
		t.Fatalf("get leaf hash differs from append's")
	}
	if !bytes.Equal(g.Signature, one[0].Signature) || g.KeyID == "" || g.ReceivedAt == "" {
		t.Fatalf("get: %+v", g)
	}
	var ev map[string]any
	if err := json.Unmarshal(g.Event, &ev); err != nil {
		t.Fatal(err)
	}
	action, _ := ev["action"].(map[string]any)
	ctx, _ := ev["context"].(map[string]any)
	actor, _ := ev["actor"].(map[string]any)
	if ev["id"] != "evt-123" || ev["timestamp"] != "2024-01-15T10:30:00.000Z" || actor["session"] != "sess-789" ||
		action["resourceId"] != "profile-123" || ctx["requestId"] != "req-abc-123" || ev["version"] != "1.0.0" {
		t.Fatalf("get event: %s", g.Event)
	}
	if _, err := ledger.DecodeLeaf(g.Leaf); err != nil {
		t.Fatal(err)
	}

	// checkpoint prints the note as served; it verifies with pubkey's key.
	pub := tn.mustCtl("", "pubkey")
	if pub != tn.vkey()+"\n" {
		t.Fatalf("pubkey %q, want %q", pub, tn.vkey())
	}
	v, err := note.NewVerifier(strings.TrimSpace(pub))
	if err != nil {
		t.Fatal(err)
	}
	cpText := tn.mustCtl("", "checkpoint")
	cp, err := ledger.OpenCheckpoint([]byte(cpText), v, "test.example/ledger")
	if err != nil {
		t.Fatalf("checkpoint %q: %v", cpText, err)
	}
	if cp.Size < 1 { // reads are self-audited: the log grows as we read
		t.Fatalf("checkpoint size %d", cp.Size)
	}
}

func TestAppendWaitReceipt(t *testing.T) {
	tn := startNode(t)
	cpFile := writeFile(t, "cp", "")
	out := tn.mustCtl(ndjson("w", 12), "append", "--wait", "--batch-size", "5", "--checkpoint-out", cpFile)
	got := lines[appendOut](t, out)
	if len(got) != 12 {
		t.Fatalf("%d lines", len(got))
	}
	for i, l := range got {
		if l.Inclusion == nil || l.Checkpoint == "" || l.Inclusion.Index != l.Index || !bytes.Equal(l.Inclusion.LeafHash, l.LeafHash) || l.Inclusion.TreeSize <= l.Index {
			t.Fatalf("line %d: %+v", i, l)
		}
	}
	// Every receipt line verifies offline with nothing but the key.
	for l := range strings.Lines(out) {
		if r := runCtl(l, "verify", "inclusion", "--key", tn.vkey()); r.code != 0 {
			t.Fatalf("receipt %s: %v", l, r)
		}
	}
	// --checkpoint-out holds the newest checkpoint, the one of the last batch.
	last := got[len(got)-1]
	proof, _ := json.Marshal(last.Inclusion)
	if r := runCtl(string(proof), "verify", "inclusion", "--key", tn.vkey(), "--checkpoint", cpFile); r.code != 0 {
		t.Fatalf("verify against --checkpoint-out: %v", r)
	}

	// A single --event with --wait gives a receipt too.
	one := lines[appendOut](t, tn.mustCtl("", "append", "--wait", "--event", oneLine(t, seedEvent)))
	if one[0].Inclusion == nil || one[0].Checkpoint == "" {
		t.Fatalf("%+v", one)
	}
}

func TestToken(t *testing.T) {
	tn := startNode(t)
	addr := tn.n.GRPCAddr()
	env := func(token string) func(string) string {
		return func(k string) string {
			switch k {
			case "LEDGER_TOKEN":
				return token
			case "LEDGER_ADDR":
				return addr
			}
			return ""
		}
	}
	call := func(getenv func(string) string, args ...string) result {
		var out, errb bytes.Buffer
		code := run(t.Context(), args, getenv, strings.NewReader(""), &out, &errb)
		return result{out.String(), errb.String(), code}
	}
	// LEDGER_ADDR and LEDGER_TOKEN from the environment.
	if r := call(env(tn.token), "get", "--id", "nope"); r.code != 2 || !strings.HasPrefix(r.stderr, "ledgerctl: NotFound: ") {
		t.Fatalf("with the env token: %v", r)
	}
	if r := call(env(tn.token), "append", "--event", oneLine(t, seedEvent)); r.code != 0 {
		t.Fatalf("with the env token: %v", r)
	}
	// --token overrides the environment.
	if r := call(env("wrong"), "--token", tn.token, "get", "--id", "evt-123"); r.code != 0 {
		t.Fatalf("--token over env: %v", r)
	}
	wantFailure(t, call(env(""), "get", "--index", "0"), 2, "ledgerctl: Unauthenticated: ")
	wantFailure(t, call(env("ldg_bogus"), "get", "--index", "0"), 2, "ledgerctl: Unauthenticated: ")

	// The metadata itself.
	g := newGlobals(func(k string) string {
		if k == "LEDGER_TOKEN" {
			return "s3cret"
		}
		return ""
	}, nil, nil, nil)
	g.addr = "127.0.0.1:1"
	if _, err := g.conn(); err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if g.token != "s3cret" {
		t.Fatalf("token from env: %q", g.token)
	}
	md := mdOf(g.outgoing(t.Context()))
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer s3cret" {
		t.Fatalf("authorization metadata %v", got)
	}
	// --help never shows the token.
	if r := call(g.getenv, "--help"); r.code != 0 || !strings.Contains(r.stdout, "--token") || strings.Contains(r.stdout, "s3cret") {
		t.Fatalf("--help: %v", r)
	}
}

func mdOf(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}
