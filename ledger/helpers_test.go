package ledger

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// testKeys are generated once per test binary; tests never use real keys.
type testKeys struct {
	signer   note.Signer
	verifier note.Verifier
	hmac     *Keyring
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	ring, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{s, v, ring}
}

// openTestLedger opens a store in dir and a ledger over it; cleanup closes both.
func openTestLedger(t testing.TB, dir string, keys testKeys, opts StoreOptions) (*Ledger, *Store) {
	t.Helper()
	st, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{Store: st, Origin: "test.example/log", Signer: keys.signer, HMAC: keys.hmac})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close(context.Background())
			st.Close()
		}
	})
	return l, st
}

// storedEntry decodes the leaf at index.
func storedEntry(t testing.TB, st *Store, index uint64) *Entry {
	t.Helper()
	leaf, err := st.Leaf(index)
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func closeLedger(t testing.TB, l *Ledger, st *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// testEvent is a valid, seed-shaped event; n varies actor and resource.
func testEvent(n int) Event {
	return Event{
		Timestamp: "2024-01-15T10:30:00.000Z",
		Actor:     Actor{ID: fmt.Sprintf("user-%d", n%97), Type: "user", IP: "192.168.1.100", Session: "sess-789"},
		Action: Action{Type: "update", Resource: "user_profile", ResourceID: fmt.Sprintf("profile-%d", n), Result: "success", Duration: 150,
			Metadata: map[string]string{"format": "csv", "recordCount": "150"}},
		Context: Context{RequestID: fmt.Sprintf("req-%d", n), Environment: "production", Application: "user-service", Version: "2.1.0"},
		Version: "1.0.0",
	}
}
