package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/ledger"
)

// appendPayload writes what json.Marshal(Payload) writes.
func TestAppendPayloadMatchesEncodingJSON(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 20, 20)
	ev := feedtest.Event("tricky", 0)
	ev.Action.Metadata = map[string]string{"html": "<a href=\"x\">&amp;</a>", "ctl": "\u2028\t"}
	if _, err := l.Ledger.Append(context.Background(), []ledger.Event{ev}); err != nil {
		t.Fatal(err)
	}
	batch, err := feed.Subscribe(l.Store, 0, feed.Options{}).NextBatch(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, withLeaf := range []bool{false, true} {
		p := Payload{Sink: "soc-webhook.1", Events: make([]json.RawMessage, len(batch))}
		for i, it := range batch {
			p.Events[i] = it.JSON(withLeaf)
		}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPayload(nil, p.Sink, batch, withLeaf); !bytes.Equal(got, want) {
			t.Fatalf("withLeaf %v:\n got %s\nwant %s", withLeaf, got, want)
		}
	}
}
