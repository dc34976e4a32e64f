package query

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

// testStore is a Store with the query index, for tests.
type testStore struct {
	t     testing.TB
	dir   string
	store *ledger.Store
	index *Index
	eng   *Engine
}

func openTestStore(t testing.TB, dir string) *testStore {
	t.Helper()
	ts := &testStore{t: t, dir: dir}
	ts.open()
	t.Cleanup(ts.close)
	return ts
}

func (ts *testStore) open() {
	ts.t.Helper()
	ts.index = NewIndex()
	st, err := ledger.OpenStore(ts.dir, ts.storeOptions())
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := ts.index.Attach(context.Background(), st); err != nil {
		ts.t.Fatal(err)
	}
	ts.store = st
	if ts.eng, err = NewEngine(EngineOptions{Store: st, CursorKey: []byte("test cursor key material")}); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *testStore) storeOptions() ledger.StoreOptions {
	o := ledger.StoreOptions{NoSync: true}
	ts.index.Install(&o)
	return o
}

func (ts *testStore) close() {
	if ts.store != nil {
		ts.store.Close()
		ts.store = nil
	}
}

func (ts *testStore) reopen() {
	ts.close()
	ts.open()
}

// apply appends entries as one batch.
func (ts *testStore) apply(entries []ledger.Entry) {
	ts.t.Helper()
	leaves := make([][]byte, len(entries))
	for i := range entries {
		leaves[i] = ledger.EncodeLeaf(&entries[i])
	}
	if _, _, err := ts.store.ApplyNext(leaves); err != nil {
		ts.t.Fatal(err)
	}
}

var t0 = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

// entry is a leaf's content with made-up signature bytes (the index never
// checks signatures).
func entry(id, actor, resource string, received time.Time) ledger.Entry {
	return ledger.Entry{
		Event: ledger.Event{
			ID:      id,
			Actor:   ledger.Actor{ID: actor, Type: "user"},
			Action:  ledger.Action{Type: "update", Resource: resource, Result: "success"},
			Context: ledger.Context{Environment: "production", Application: "user-service"},
		},
		ReceivedAt: received.UnixNano(),
		KeyID:      "k1",
		Signature:  []byte{1, 2, 3},
	}
}

// all walks every page of req and returns the indices.
func (ts *testStore) all(req Request) []uint64 {
	ts.t.Helper()
	var out []uint64
	for range 100000 {
		p, err := ts.eng.Query(context.Background(), req)
		if err != nil {
			ts.t.Fatal(err)
		}
		for _, r := range p.Rows {
			out = append(out, r.Index)
		}
		if !p.HasMore {
			return out
		}
		req.Cursor = p.NextCursor
	}
	ts.t.Fatal("too many pages")
	return nil
}

func testSigner(t testing.TB) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}
