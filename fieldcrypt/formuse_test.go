package fieldcrypt

import (
	"fmt"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

// TestFormUse: a field whose values are new in every event stops being
// cached, one whose values repeat stays cached, a probe batch looks
// again, and the stored forms are the same either way.
func TestFormUse(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	batch := func(n int) []ledger.Event {
		evs := make([]ledger.Event, 100)
		for i := range evs {
			evs[i] = event(fmt.Sprintf("user-%d", i%5))
			evs[i].Actor.Session = fmt.Sprintf("sess-%d-%d", n, i)
		}
		return evs
	}
	fi := func(name string) int {
		for i, f := range encryptable {
			if f.name == name {
				return i
			}
		}
		t.Fatalf("no field %s", name)
		return 0
	}
	sess, id := fi("actor.session"), fi("actor.id")
	first, err := e.c.Transform(batch(0))
	if err != nil {
		t.Fatal(err)
	}
	if !e.c.formUse.skip[sess].Load() || e.c.formUse.skip[id].Load() {
		t.Fatalf("after one batch: session skipped %v (want true), id skipped %v (want false)", e.c.formUse.skip[sess].Load(), e.c.formUse.skip[id].Load())
	}
	for n := 1; n < 2*formProbeEvery; n++ {
		if _, err := e.c.Transform(batch(n)); err != nil {
			t.Fatal(err)
		}
	}
	if !e.c.formUse.skip[sess].Load() || e.c.formUse.skip[id].Load() {
		t.Fatal("after probes: verdicts changed")
	}
	again, err := e.c.Transform(batch(0)) // the same values, uncached now
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i].Actor != again[i].Actor {
			t.Fatalf("event %d: %+v then %+v", i, first[i].Actor, again[i].Actor)
		}
	}
}
