package fieldcrypt

import (
	"fmt"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

// BenchmarkTransform encrypts batches of 1000 seed-like events of 1000
// subjects (keys cached after the first batch): actor.id (searchable),
// ip and session under each subject's data key.
//
//	go test -run '^$' -bench Transform -benchmem ./fieldcrypt/
func BenchmarkTransform(b *testing.B) {
	e := newEnv(b, b.TempDir(), Config{}, randKey(b))
	evs := make([]ledger.Event, 1000)
	for i := range evs {
		evs[i] = ledger.Event{
			Timestamp: "2024-01-15T10:30:00.000Z",
			Actor:     ledger.Actor{ID: fmt.Sprintf("user-%d", i), Type: "user", IP: "192.168.1.100", Session: "sess-789"},
			Action:    ledger.Action{Type: "update", Resource: "user_profile", ResourceID: fmt.Sprintf("profile-%d", i), Result: "success", Duration: 150},
			Context:   ledger.Context{RequestID: fmt.Sprintf("req-%d", i), Environment: "production", Application: "user-service", Version: "2.1.0"},
			Version:   "1.0.0",
		}
	}
	if _, err := e.c.Transform(evs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := e.c.Transform(evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// BenchmarkReveal decrypts one such event for a caller allowed to see
// sensitive fields.
func BenchmarkReveal(b *testing.B) {
	e := newEnv(b, b.TempDir(), Config{}, randKey(b))
	r := e.append(b, event("bench-user"))
	leaf, _ := e.store.Leaf(r[0].Index)
	ent, _ := ledger.DecodeLeaf(leaf)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ev := ent.Event
		e.c.Reveal(&ev, true)
	}
}
