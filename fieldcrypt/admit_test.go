package fieldcrypt

import (
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

// TestFrequentReopensAreAdmitted: a new subject's key waits in the
// second tier (by its id in the first), counted as reopened once; a key
// reopened from the second tier enters the first on its admitReopens-th
// reopening in an epoch, and seals the same forms whichever tier it
// comes from; counts fade with the epochs.
func TestFrequentReopensAreAdmitted(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	first, err := e.c.Transform([]ledger.Event{event("kate")})
	if err != nil {
		t.Fatal(err)
	}
	inFirstTier := func() bool {
		e.c.mu.RLock()
		defer e.c.mu.RUnlock()
		return e.c.bySubject["kate"] != nil
	}
	evict := func() {
		e.c.mu.Lock()
		delete(e.c.bySubject, "kate")
		e.c.mu.Unlock()
	}
	transform := func() {
		t.Helper()
		out, err := e.c.Transform([]ledger.Event{event("kate")})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Actor.ID != first[0].Actor.ID {
			t.Fatalf("sealed %q, first %q", out[0].Actor.ID, first[0].Actor.ID)
		}
	}
	e.c.mu.RLock()
	byID := e.c.byID[keyOf(t, first[0].Actor.ID)] != nil
	e.c.mu.RUnlock()
	if inFirstTier() || !byID {
		t.Fatalf("a new subject's key: by subject in the first tier %v, by id %v", inFirstTier(), byID)
	}
	for i := 2; i < admitReopens; i++ {
		transform()
		if inFirstTier() {
			t.Fatalf("admitted after %d reopenings", i)
		}
	}
	transform()
	if !inFirstTier() {
		t.Fatalf("not admitted after %d reopenings", admitReopens)
	}

	// Two reopenings, then epochs pass: the count starts again.
	evict()
	e.c.mu.Lock()
	ck := e.c.cold[e.c.subjectTierKey("kate")]
	ck.reopened = 0
	e.c.cold[e.c.subjectTierKey("kate")] = ck
	e.c.mu.Unlock()
	for range admitReopens - 1 {
		transform()
	}
	e.c.events.Add(8 * admitEpoch)
	transform()
	if inFirstTier() {
		t.Fatal("admitted with counts from eight epochs ago")
	}
}
