package ledger

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestQueueKVIsDurableWithTheNextBatch: a queued KV write is invisible
// until the next batch, which holds it: a crash after that batch's sync
// keeps both, and no crash keeps the leaves without it.
func TestQueueKVIsDurableWithTheNextBatch(t *testing.T) {
	keys := newTestKeys(t)
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) *Store {
		st, err := OpenStore("db", StoreOptions{Pebble: &pebble.Options{FS: fs}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(fs)
	key := []byte("s/data-key-1")
	writes := st.KVWrites()
	if err := st.QueueKV([]KV{{Key: key, Value: []byte("wrapped")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a queued write is visible before the next batch: %v", err)
	}
	if err := st.QueueKV([]KV{{Key: []byte("leaf/no-reserved"), Value: nil}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a key outside the reserved tables: %v, want ErrInvalid", err)
	}
	e := Entry{Event: testEvent(1), ReceivedAt: 1}
	e.ID = "01890000-0000-7000-8000-000000000001"
	_, wait, err := st.ApplyNext([][]byte{keys.hmac.sealLeaf(&e)})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(key); err != nil || string(v) != "wrapped" {
		t.Fatalf("after the next batch: %q, %v", v, err)
	}
	if st.KVWrites() != writes {
		t.Fatalf("KVWrites %d → %d: queued writes do not count", writes, st.KVWrites())
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(crashed)
	defer st.Close()
	if st.State().Size != 1 || st.State().LastApplied != 1 {
		t.Fatalf("after the crash: %d entries, batch %d; want the synced 1, 1", st.State().Size, st.State().LastApplied)
	}
	if v, err := st.Get(key); err != nil || string(v) != "wrapped" {
		t.Fatalf("after the crash the leaves survived but the KV queued before them did not: %q, %v", v, err)
	}
}

// TestQueueKVOrder: queued writes go before the next KV batch's own, so
// a delete in that batch (an erasure) wins over a queued set of the same
// key; FlushQueuedKV writes the queue.
func TestQueueKVOrder(t *testing.T) {
	st, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := []byte("s/data-key-2")
	if err := st.QueueKV([]KV{{Key: key, Value: []byte("wrapped")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyKVNext([]KV{{Key: key, Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the queued set outlived the later delete: %v", err)
	}
	if err := st.QueueKV([]KV{{Key: key, Value: []byte("again")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.FlushQueuedKV(); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(key); err != nil || string(v) != "again" {
		t.Fatalf("after FlushQueuedKV: %q, %v", v, err)
	}
}
