package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestTransformHandsEventsToSeal: Config.Transform's events are the ones
// sealed, the caller's are left as they were, and an error from seal
// (an event too large once transformed) refuses the whole batch.
func TestTransformHandsEventsToSeal(t *testing.T) {
	keys := newTestKeys(t)
	st, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var grow bool
	transform := func(events []Event, seal func(int, *Event) error) error {
		var e Event
		for i := range events {
			e = events[i]
			e.Actor.ID = "t:" + e.Actor.ID
			if grow && i == 1 {
				e.Action.ResourceID = strings.Repeat("x", MaxEventBytes)
			}
			if err := seal(i, &e); err != nil {
				return err
			}
		}
		return nil
	}
	l, err := New(Config{Store: st, Origin: "test.example/log", Signer: keys.signer, HMAC: keys.hmac, Transform: transform})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())

	events := []Event{testEvent(1), testEvent(2)}
	res, err := l.Append(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if e, want := storedEntry(t, st, r.Index), "t:"+events[i].Actor.ID; e.Actor.ID != want {
			t.Errorf("entry %d: actor %q, want %q", i, e.Actor.ID, want)
		}
		if strings.HasPrefix(events[i].Actor.ID, "t:") {
			t.Errorf("the caller's event %d was changed", i)
		}
	}

	grow = true
	size := st.State().Size
	if _, err := l.Append(context.Background(), []Event{testEvent(3), testEvent(4)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized once transformed: %v", err)
	}
	if st.State().Size != size {
		t.Fatalf("a refused batch changed the size: %d -> %d", size, st.State().Size)
	}
}
