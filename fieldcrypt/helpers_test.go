package fieldcrypt

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func randKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// env is one node: a store, a ledger whose Transform is a Crypter.
type env struct {
	store  *ledger.Store
	ledger *ledger.Ledger
	c      *Crypter
	v      note.Verifier
}

func openStore(t testing.TB, dir string) *ledger.Store {
	t.Helper()
	st, err := ledger.OpenStore(dir, ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newEnv opens a ledger in dir with master key mk and config cfg.
func newEnv(t testing.TB, dir string, cfg Config, mk []byte, old ...[]byte) *env {
	t.Helper()
	st := openStore(t, dir)
	e, err := newEnvOn(t, st, cfg, mk, old...)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return e
}

func newEnvOn(t testing.TB, st *ledger.Store, cfg Config, mk []byte, old ...[]byte) (*env, error) {
	t.Helper()
	master, err := NewMasterKeys(mk, old...)
	if err != nil {
		return nil, err
	}
	c, err := New(Options{Config: cfg, Master: master, Store: st, Commit: ledger.LocalCommitter{Store: st}, Logger: quiet()})
	if err != nil {
		return nil, err
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "test.example/log")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	ring, _ := ledger.NewKeyring(randKey(t))
	l, err := ledger.New(ledger.Config{Store: st, Origin: "test.example/log", Signer: s, HMAC: ring, Transform: c.TransformEach, Logger: quiet()})
	if err != nil {
		return nil, err
	}
	e := &env{store: st, ledger: l, c: c, v: v}
	t.Cleanup(func() { e.close() })
	return e, nil
}

func (e *env) close() {
	if e.ledger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.ledger.Close(ctx)
		cancel()
		e.store.Close()
		e.ledger = nil
	}
}

func (e *env) append(t testing.TB, evs ...ledger.Event) []ledger.AppendResult {
	t.Helper()
	res, err := e.ledger.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// read decodes the stored leaf at index and reveals it.
func (e *env) read(t testing.TB, index uint64, sensitive bool) (ledger.Event, []byte) {
	t.Helper()
	leaf, err := e.store.Leaf(index)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	ev := ent.Event
	e.c.Reveal(&ev, sensitive)
	return ev, leaf
}

func event(actor string) ledger.Event {
	return ledger.Event{
		Timestamp: "2024-01-15T10:30:00.000Z",
		Actor:     ledger.Actor{ID: actor, Type: "user", IP: "203.0.113.77", Session: "sess-" + actor, UserAgent: "Mozilla/5.0 (" + actor + ")"},
		Action: ledger.Action{Type: "update", Resource: "user_profile", ResourceID: "profile-123", Result: "success", Duration: 150,
			Metadata: map[string]string{"password": "hunter2-" + actor, "creditCard": "4111111111111111", "SSN": "078-05-1120", "format": "csv"}},
		Context: ledger.Context{RequestID: "req-1", Environment: "production", Application: "user-service", Version: "2.1.0"},
		Version: "1.0.0",
	}
}

// asStored is ev as a read gives it back once sealed into a leaf:
// Transform's binary v2 values (internal/sealed) become their text.
func asStored(t interface {
	Helper()
	Fatalf(string, ...any)
}, ev ledger.Event) ledger.Event {
	t.Helper()
	ent, err := ledger.DecodeLeaf(ledger.EncodeLeaf(&ledger.Entry{Event: ev, KeyID: "k", Signature: []byte{1}}))
	if err != nil {
		t.Fatalf("leaf of %+v: %v", ev, err)
	}
	return ent.Event
}
