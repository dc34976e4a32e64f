package feed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

func itemOf(t testing.TB, e ledger.Entry) *Item {
	leaf := ledger.EncodeLeaf(&e)
	return &Item{Index: 42, Leaf: leaf, LeafHash: merkle.LeafHash(leaf), Entry: &e}
}

// MarshalRecord must give exactly what encoding/json gives for Record.
func checkRecordJSON(t *testing.T, it *Item) {
	t.Helper()
	for _, withLeaf := range []bool{false, true} {
		want, err := json.Marshal(NewRecord(it, withLeaf))
		if err != nil {
			t.Fatal(err)
		}
		if got := MarshalRecord(it, withLeaf); !bytes.Equal(got, want) {
			t.Fatalf("MarshalRecord:\n got %s\nwant %s", got, want)
		}
	}
}

func TestMarshalRecordMatchesEncodingJSON(t *testing.T) {
	tricky := []string{"", "plain", `quote " and \ backslash`, "ctl \x00\x01\x1f\b\f\n\r\t", "<html>&amp;", "line\u2028sep\u2029", "ünïcødé 日本 🎉", "\x7f"}
	for _, s := range tricky {
		e := ledger.Entry{
			Event: ledger.Event{ID: s + "id", Timestamp: s, Version: s,
				Actor:   ledger.Actor{ID: s, Type: s, IP: s, Session: s, UserAgent: s},
				Action:  ledger.Action{Type: s, Resource: s, ResourceID: s, Result: s, Duration: int64(len(s)), Metadata: map[string]string{s + "k": s, "z": s}},
				Context: ledger.Context{RequestID: s, Environment: "", Application: s, Version: s}},
			ReceivedAt: 1700000000123456789, KeyID: "h0123", Signature: []byte{1, 2, 3},
		}
		checkRecordJSON(t, itemOf(t, e))
	}
	// Empty optional fields and no metadata.
	checkRecordJSON(t, itemOf(t, ledger.Entry{Event: ledger.Event{ID: "x", Actor: ledger.Actor{ID: "a"}, Action: ledger.Action{Type: "t", Resource: "r", Result: "success"}}}))
}

func FuzzMarshalRecord(f *testing.F) {
	f.Add("id", "actor", "meta-key", "meta\nvalue", int64(5))
	f.Add("", "\u2028", "<", "&\x00", int64(0))
	f.Fuzz(func(t *testing.T, id, actor, mk, mv string, d int64) {
		if d < 0 {
			d = -d
		}
		e := ledger.Entry{Event: ledger.Event{ID: id, Actor: ledger.Actor{ID: actor}, Action: ledger.Action{Type: mk, Resource: mv, Result: "denied", Duration: d, Metadata: map[string]string{mk: mv}}}, ReceivedAt: d}
		if e.Validate() != nil {
			return // the ledger stores only valid events (valid UTF-8)
		}
		checkRecordJSON(t, itemOf(t, e))
	})
}

func BenchmarkMarshalRecord(b *testing.B) {
	e := ledger.Entry{Event: ledger.Event{ID: "01a216b9-666d-7364-9dd7-a584c0e8d99a", Timestamp: "2024-01-15T10:30:00.000Z",
		Actor:   ledger.Actor{ID: "user-456", Type: "user", IP: "192.168.1.100", Session: "sess-789"},
		Action:  ledger.Action{Type: "update", Resource: "user_profile", ResourceID: "profile-123", Result: "success", Duration: 150, Metadata: map[string]string{"k": "v"}},
		Context: ledger.Context{RequestID: "req-abc-123", Environment: "production", Application: "user-service", Version: "2.1.0"}, Version: "1.0.0"},
		ReceivedAt: 1700000000123456789, KeyID: "h0123456789abcdef", Signature: bytes.Repeat([]byte{7}, 32)}
	it := itemOf(b, e)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			MarshalRecord(it, false)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(NewRecord(it, false))
		}
	})
}

// encodeBatch writes many records into shared buffers: each must be its
// own record, and growing one must not touch the next.
func TestEncodeBatchMatchesMarshalRecord(t *testing.T) {
	var batch []*Item
	for i := range 300 { // more than one 64 KiB buffer
		e := ledger.Entry{Event: ledger.Event{ID: fmt.Sprint("id-", i), Actor: ledger.Actor{ID: strings.Repeat("a", i)},
			Action: ledger.Action{Type: "t", Resource: "r", Result: "success", Metadata: map[string]string{"k": "<v>"}}},
			ReceivedAt: int64(i), KeyID: "k0", Signature: []byte{byte(i)}}
		batch = append(batch, itemOf(t, e))
	}
	for _, withLeaf := range []bool{false, true} {
		encodeBatch(batch, withLeaf)
		for i, it := range batch {
			if got, want := it.JSON(withLeaf), MarshalRecord(it, withLeaf); !bytes.Equal(got, want) {
				t.Fatalf("item %d (withLeaf %v):\n got %s\nwant %s", i, withLeaf, got, want)
			}
		}
		_ = append(batch[0].JSON(withLeaf), "overwrite?"...)
		if got, want := batch[1].JSON(withLeaf), MarshalRecord(batch[1], withLeaf); !bytes.Equal(got, want) {
			t.Fatalf("appending to one record changed the next: %s", got)
		}
	}
}
