package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

// seedEvent is the single-event example from the old service's README.
const seedEvent = `{
  "id": "evt-123",
  "timestamp": "2024-01-15T10:30:00.000Z",
  "actor": {"id": "user-456", "type": "user", "ip": "192.168.1.100", "session": "sess-789"},
  "action": {"type": "update", "resource": "user_profile", "resourceId": "profile-123", "result": "success", "duration": 150},
  "context": {"requestId": "req-abc-123", "environment": "production", "application": "user-service", "version": "2.1.0"},
  "version": "1.0.0"
}`

func TestParseEventJSON(t *testing.T) {
	e, err := ParseEventJSON([]byte(seedEvent))
	if err != nil {
		t.Fatal(err)
	}
	ev := EventFromProto(e)
	if ev.ID != "evt-123" || ev.Actor.Session != "sess-789" || ev.Action.ResourceID != "profile-123" || ev.Action.Duration != 150 || ev.Context.RequestID != "req-abc-123" {
		t.Fatalf("parsed %+v", ev)
	}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ in, want string }{
		"unknown field": {`{"actor":{"id":"a","nmae":"x"}}`, "nmae"},
		"not json":      {`{`, ""},
		"wrong type":    {`{"action":{"duration":"long"}}`, "duration"},
	} {
		_, err := ParseEventJSON([]byte(c.in))
		if !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", name, err, c.want)
		}
	}
}

func FuzzParseEventJSON(f *testing.F) {
	f.Add([]byte(seedEvent))
	f.Add([]byte(`{"actor":{"id":"a"},"action":{"type":"t","resource":"r","result":"success","metadata":{"k":"v"}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEventJSON(b)
		if err != nil {
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			return
		}
		ev := EventFromProto(e)
		if ev.Validate() != nil {
			return
		}
		// A valid event survives the trip through the wire form.
		out, err := MarshalEventJSON(EventToProto(&ev))
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseEventJSON(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if got := EventFromProto(back); got.ID != ev.ID || got.Actor != ev.Actor || got.Action.Result != ev.Action.Result {
			t.Fatalf("round trip changed the event: %+v vs %+v", got, ev)
		}
	})
}
