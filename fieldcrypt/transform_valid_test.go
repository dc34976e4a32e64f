package fieldcrypt

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/auditledger/ledgerd/ledger"
)

// TestTransformKeepsEventsValid is the contract ledger.Config.Transform
// states and Seal relies on (it does not validate Transform's output):
// a valid event stays valid once every encryptable field and metadata
// value is encrypted, under a data subject's key or the field key, and
// sealed into a leaf (which stores searchable values in binary).
func TestTransformKeepsEventsValid(t *testing.T) {
	var all []string
	for _, f := range encryptable {
		all = append(all, f.name)
	}
	e := newEnv(t, t.TempDir(), Config{PersonalFields: all, SearchableFields: []string{"actor.id", "actor.ip"}, SensitiveFields: []string{"*"}}, randKey(t))
	str := rapid.OneOf(rapid.Just(""), rapid.String(), rapid.StringMatching(`[a-z0-9@.\-]{1,40}`))
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(rt, "n")
		events := make([]ledger.Event, n)
		for i := range events {
			ev := event(rapid.StringMatching(`[a-z]{1,12}`).Draw(rt, "actor"))
			if rapid.Bool().Draw(rt, "noSubject") {
				ev.Actor.ID = "-" // still required; a subject of its own
			}
			for _, f := range encryptable[1:] {
				*f.get(&ev) = str.Draw(rt, f.name)
			}
			ev.Action.Metadata = rapid.MapOf(rapid.StringMatching(`[a-zA-Z]{1,8}`), str).Draw(rt, "metadata")
			if ev.Validate() != nil {
				continue // invalid input is refused before Transform
			}
			events[i] = ev
		}
		valid := events[:0]
		for _, ev := range events {
			if ev.Action.Type != "" {
				valid = append(valid, ev)
			}
		}
		if len(valid) == 0 {
			return
		}
		out, err := e.c.Transform(valid)
		if err != nil {
			rt.Fatalf("Transform: %v", err)
		}
		for i := range out {
			// Searchable values are in binary, which the leaf takes as
			// it is and a read gives back as text.
			ev := asStored(rt, out[i])
			if err := ev.Validate(); err != nil {
				rt.Fatalf("event %d invalid after Transform: %v\n%+v", i, err, out[i])
			}
		}
	})
}
