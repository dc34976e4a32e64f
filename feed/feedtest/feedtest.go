// Package feedtest builds real ledgers for the feed's tests: Pebble in a
// temporary directory, a generated checkpoint key and HMAC key.
package feedtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

// Keys are the signing keys of a test ledger; reuse them to reopen it.
type Keys struct {
	Signer   note.Signer
	Verifier note.Verifier
	HMAC     []byte
}

// NewKeys generates keys.
func NewKeys(t testing.TB) Keys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	hk := make([]byte, 32)
	rand.Read(hk)
	return Keys{Signer: signer, Verifier: verifier, HMAC: hk}
}

// Ledger is an open store and ledger.
type Ledger struct {
	Store  *ledger.Store
	Ledger *ledger.Ledger
	Keys   Keys
	Dir    string
}

// Open opens (or reopens) a ledger in dir. Close closes it; it is also
// closed at the end of the test if still open.
func Open(t testing.TB, dir string, keys Keys) *Ledger {
	t.Helper()
	st, err := ledger.OpenStore(dir, ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := ledger.NewKeyring(keys.HMAC)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(ledger.Config{Store: st, Origin: "test.example/log", Signer: keys.Signer, HMAC: ring})
	if err != nil {
		t.Fatal(err)
	}
	tl := &Ledger{Store: st, Ledger: l, Keys: keys, Dir: dir}
	t.Cleanup(tl.Close)
	return tl
}

// New opens a fresh ledger in a temporary directory.
func New(t testing.TB) *Ledger { return Open(t, t.TempDir(), NewKeys(t)) }

// Close closes the ledger and its store; a second call does nothing.
func (l *Ledger) Close() {
	if l.Ledger == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l.Ledger.Close(ctx)
	l.Store.Close()
	l.Ledger = nil
}

// Event returns a valid event with id "<prefix>-<i>".
func Event(prefix string, i int) ledger.Event {
	return ledger.Event{
		ID:      fmt.Sprintf("%s-%d", prefix, i),
		Actor:   ledger.Actor{ID: fmt.Sprintf("user-%d", i%17), Type: "user", IP: "192.0.2.1"},
		Action:  ledger.Action{Type: "update", Resource: "profile", ResourceID: fmt.Sprint(i), Result: "success", Duration: 3, Metadata: map[string]string{"k": "v"}},
		Context: ledger.Context{RequestID: fmt.Sprint("req-", i), Environment: "test"},
		Version: "1.0.0",
	}
}

// Append appends n events with ids prefix-from .. prefix-(from+n-1) in
// batches of at most batch.
func (l *Ledger) Append(t testing.TB, prefix string, from, n, batch int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(batch, n-done)
		evs := make([]ledger.Event, k)
		for j := range evs {
			evs[j] = Event(prefix, from+done+j)
		}
		if _, err := l.Ledger.Append(context.Background(), evs); err != nil {
			t.Fatalf("append: %v", err)
		}
		done += k
	}
}

// WaitFor polls cond every few milliseconds until it holds or the
// deadline passes, then fails the test with msg.
func WaitFor(t testing.TB, d time.Duration, msg func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, msg())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
