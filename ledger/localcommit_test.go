package ledger_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

// TestLocalCommitterConcurrentKV runs appends and CommitKV side by side,
// as the feed's sink cursors do: both number their batch from
// LastApplied, so without serialisation one of them is taken for a replay
// (an append fails, or a KV write is silently dropped).
func TestLocalCommitterConcurrentKV(t *testing.T) {
	st, err := ledger.OpenStore(t.TempDir(), ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	skey, _, err := note.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	hk := make([]byte, 32)
	rand.Read(hk)
	ring, err := ledger.NewKeyring(hk)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(ledger.Config{Store: st, Origin: "test", Signer: signer, HMAC: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())

	const n = 300
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ev := ledger.Event{Actor: ledger.Actor{ID: "a"}, Action: ledger.Action{Type: "t", Resource: "r", Result: "success"}}
			if _, err := l.Append(ctx, []ledger.Event{ev}); err != nil {
				errs <- fmt.Errorf("append %d: %w", i, err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			v := binary.BigEndian.AppendUint64(nil, uint64(i))
			if err := l.Committer().CommitKV(ctx, []ledger.KV{{Key: []byte("f/test"), Value: v}}); err != nil {
				errs <- fmt.Errorf("commit kv %d: %w", i, err)
				continue
			}
			got, err := st.Get([]byte("f/test"))
			if err != nil || binary.BigEndian.Uint64(got) != uint64(i) {
				errs <- fmt.Errorf("kv write %d was dropped (read %x, %v)", i, got, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := st.State().Size; got != n {
		t.Errorf("size %d, want %d", got, n)
	}
}
