package fieldcrypt

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

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

// seedBatches returns n batches of 1000 events like the bench
// workload's (bench/generator.go): 80% users drawn from a Zipf
// population of users, each with its ip and user agent and a fresh
// session id per event; 15% a few services, 3% "system", 2% api keys
// seen once (new subjects). prefix makes the subjects of one call
// distinct from another's.
func seedBatches(n, users int, prefix string, seed uint64) [][]ledger.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, 1.1, 1, uint64(users-1))
	agents := []string{"Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1)", "curl/8.4.0", "python-requests/2.31", "okhttp/4.12"}
	out := make([][]ledger.Event, n)
	for b := range out {
		evs := make([]ledger.Event, 1000)
		for i := range evs {
			a := ledger.Actor{}
			switch p := r.IntN(100); {
			case p < 80:
				u := z.Uint64() + 1
				a = ledger.Actor{ID: fmt.Sprintf("%suser-%06d", prefix, u), Type: "user", IP: fmt.Sprintf("10.%d.%d.%d", u>>16&255, u>>8&255, u&255),
					Session: fmt.Sprintf("sess_%016x", r.Uint64()), UserAgent: agents[u%4]}
			case p < 95:
				a = ledger.Actor{ID: fmt.Sprintf("svc-%d", r.IntN(8)), Type: "service", IP: fmt.Sprintf("172.16.%d.%d", r.IntN(16), 2+r.IntN(250)), UserAgent: "Go-http-client/2.0"}
			case p < 98:
				a = ledger.Actor{ID: "system", Type: "system"}
			default:
				a = ledger.Actor{ID: fmt.Sprintf("ak_%024x", r.Uint64()), Type: "api-key", IP: fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)), UserAgent: agents[4+r.IntN(3)]}
			}
			evs[i] = ledger.Event{
				Timestamp: "2024-01-15T10:30:00.000Z",
				Actor:     a,
				Action: ledger.Action{Type: "update", Resource: "document", ResourceID: fmt.Sprintf("doc-%d", r.IntN(1_000_000)), Result: "success", Duration: 42,
					Metadata: map[string]string{"method": "PUT", "path": "/api/v1/documents/x"}},
				Context: ledger.Context{RequestID: fmt.Sprintf("req-%016x", r.Uint64()), Environment: "production", Application: "docs", Version: "2.1.0"},
				Version: "1.0.0",
			}
		}
		out[b] = evs
	}
	return out
}

// BenchmarkTransformZipf encrypts batches of 1000 events like the bench
// workload's (seedBatches), over a real store (no fsync), as the ledger's
// Transform:
//
//   - warm: 50,000 users whose data keys exist and are cached (the
//     batches were encrypted once before the timer), only the 2% api
//     keys are new;
//
//   - restart: the same, on a fresh Crypter over the same store (keys
//     exist, nothing is cached: each subject is found and unwrapped once);
//
//   - cold: every batch's users are new (a population of its own), so
//     each batch creates ~1000 data keys.
//
//     go test -run '^$' -bench TransformZipf -benchmem ./fieldcrypt/
func BenchmarkTransformZipf(b *testing.B) {
	const pool = 32
	// warm is a Crypter that has encrypted the batches once: every
	// user's data key exists and is cached.
	warm := func(b *testing.B) (*Crypter, [][]ledger.Event) {
		e := newEnv(b, b.TempDir(), Config{}, randKey(b))
		batches := seedBatches(pool, 50_000, "", 1)
		for _, evs := range batches {
			if _, err := e.c.Transform(evs); err != nil {
				b.Fatal(err)
			}
		}
		return e.c, batches
	}
	b.Run("warm", func(b *testing.B) {
		c, batches := warm(b)
		runTransform(b, c, batches, false, false)
		out, _ := c.Transform(batches[0])
		b.ReportMetric(meanLeafBytes(batches[0]), "plain-leaf-B")
		b.ReportMetric(meanLeafBytes(out), "sealed-leaf-B")
	})
	// As the bench workload: every user event has a new session id.
	b.Run("warm-fresh-sessions", func(b *testing.B) {
		c, batches := warm(b)
		runTransform(b, c, batches, true, false)
	})
	// The same, with the leaves sealed: the append path's share of
	// encryption (the leaf encoder takes the binary values Transform
	// makes as they are).
	b.Run("warm-fresh-sessions-leaves", func(b *testing.B) {
		c, batches := warm(b)
		runTransform(b, c, batches, true, true)
	})
	b.Run("restart", func(b *testing.B) {
		dir := b.TempDir()
		mk := randKey(b)
		batches := seedBatches(pool, 50_000, "", 1)
		e := newEnv(b, dir, Config{}, mk)
		for _, evs := range batches {
			if _, err := e.c.Transform(evs); err != nil {
				b.Fatal(err)
			}
		}
		e.close()
		e = newEnv(b, dir, Config{}, mk)
		fresh := func() *Crypter {
			master, _ := NewMasterKeys(mk)
			c, err := New(Options{Master: master, Store: e.store, Commit: ledger.LocalCommitter{Store: e.store}, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%pool == 0 {
				b.StopTimer()
				c := fresh()
				b.StartTimer()
				e.c = c
			}
			if _, err := e.c.Transform(batches[i%pool]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
	b.Run("cold", func(b *testing.B) {
		e := newEnv(b, b.TempDir(), Config{}, randKey(b))
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			evs := seedBatches(1, 1000, fmt.Sprintf("p%d-", i), uint64(i))[0]
			b.StartTimer()
			if _, err := e.c.Transform(evs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
}

// runTransform encrypts the batches in turn, and with leaves encodes
// their leaves; with freshSessions, user events get a new session id
// before each batch (outside the timer).
// Besides wall time per event it reports the process's CPU time per
// event (GC included), steadier on a shared machine.
func runTransform(b *testing.B, c *Crypter, batches [][]ledger.Event, freshSessions, leaves bool) {
	b.ReportAllocs()
	var n uint64
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		evs := batches[i%len(batches)]
		if freshSessions {
			b.StopTimer()
			for j := range evs {
				if evs[j].Actor.Session != "" {
					n++
					evs[j].Actor.Session = fmt.Sprintf("sess_%016x", n)
				}
			}
			b.StartTimer()
		}
		t0 := processCPU()
		out, err := c.Transform(evs)
		if err != nil {
			b.Fatal(err)
		}
		if leaves {
			for j := range out {
				ledger.EncodeLeaf(&ledger.Entry{Event: out[j], ReceivedAt: 1, KeyID: "k1", Signature: make([]byte, 32)})
			}
		}
		cpu += processCPU() - t0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*1000), "cpu-ns/event")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meanLeafBytes is the mean size of the leaves of evs (id, receive time
// and a 32-byte signature filled in as the ledger does).
func meanLeafBytes(evs []ledger.Event) float64 {
	n := 0
	for _, ev := range evs {
		ev.ID = "01JH0000000000000000000000"
		n += len(ledger.EncodeLeaf(&ledger.Entry{Event: ev, ReceivedAt: 1, KeyID: "k1", Signature: make([]byte, 32)}))
	}
	return float64(n) / float64(len(evs))
}
