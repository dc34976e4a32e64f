package ledger

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestApplyKVNextAheadIsDurableWithTheNextBatch: a KV write that does not
// wait for its own fsync is visible at once, and a crash after the next
// synced batch keeps both (Pebble's log is written in order); a crash
// before that may keep neither or the KV alone, never the leaves alone.
func TestApplyKVNextAheadIsDurableWithTheNextBatch(t *testing.T) {
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
	if err := st.ApplyKVNextAhead([]KV{{Key: key, Value: []byte("wrapped")}}); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(key); err != nil || string(v) != "wrapped" {
		t.Fatalf("right after the write: %q, %v", v, err)
	}
	if err := st.ApplyKVNextAhead([]KV{{Key: []byte("leaf/no-reserved"), Value: nil}}); err == nil {
		t.Fatal("a key outside the reserved tables was accepted")
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
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(crashed)
	defer st.Close()
	if st.State().Size != 1 {
		t.Fatalf("after the crash: %d entries, want the synced 1", st.State().Size)
	}
	if v, err := st.Get(key); err != nil || string(v) != "wrapped" {
		t.Fatalf("after the crash the leaves survived but the KV written ahead of them did not: %q, %v", v, err)
	}
	if got := fmt.Sprint(st.State().LastApplied); got != "2" {
		t.Fatalf("last applied batch %s, want 2 (the KV write, then the leaves)", got)
	}
}
