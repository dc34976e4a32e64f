package fieldcrypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/ledger"
)

// replicated stands in for a cluster's committer: it applies writes to
// the store (as the FSM does on every node), tells the watchers, and is
// not a ledger.LocalCommitter, so a Crypter cannot assume it sees every
// write.
type replicated struct {
	st       *ledger.Store
	delay    time.Duration // each write takes this long (an fsync, a Raft round)
	calls    atomic.Int64
	mu       sync.Mutex
	watchers []func([]ledger.KV)
}

func (r *replicated) CommitKV(_ context.Context, ops []ledger.KV) error {
	r.calls.Add(1)
	time.Sleep(r.delay)
	if err := r.st.ApplyKVNext(ops); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.watchers {
		w(ops)
	}
	return nil
}

func (r *replicated) watch(applied func([]ledger.KV), _ func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers = append(r.watchers, applied)
}

// subjectKeyIDs lists the data key ids indexed for subject.
func subjectKeyIDs(t testing.TB, c *Crypter, subject string) []string {
	t.Helper()
	refs, err := c.subjectDataKeys(subject)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range refs {
		ids = append(ids, r.id)
	}
	return ids
}

// TestConcurrentCreation: many appends at once, of the same and of
// different new subjects, get exactly one data key per subject, each
// committed (or, on a single node, queued for the leaf batch) before the
// append that uses it returns, in fewer writes
// than subjects when writes are slow.
func TestConcurrentCreation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		watch bool // the node reports replicated writes (Options.Watch)
		local bool // a single node's LocalCommitter
	}{
		{name: "single node", local: true},
		{name: "replicated, watched", watch: true},
		{name: "replicated, not watched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			defer st.Close()
			master, _ := NewMasterKeys(randKey(t))
			r := &replicated{st: st, delay: 2 * time.Millisecond}
			o := Options{Master: master, Store: st, Commit: r, Logger: quiet()}
			if tc.local {
				o.Commit = ledger.LocalCommitter{Store: st}
			}
			if tc.watch {
				o.Watch = r.watch
			}
			c, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.index != nil; got != (tc.local || tc.watch) {
				t.Fatalf("subject index on = %v", got)
			}
			if _, err := c.Rotate(context.Background()); err != nil { // the field key, first
				t.Fatal(err)
			}
			r.calls.Store(0)

			const workers, rounds = 16, 3
			var wg sync.WaitGroup
			errs := make(chan error, workers*rounds)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for round := range rounds {
						evs := []ledger.Event{
							event(fmt.Sprintf("shared-%d", round)),       // every worker, same round
							event(fmt.Sprintf("pair-%d-%d", round, w/2)), // two workers
							event(fmt.Sprintf("own-%d-%d", round, w)),    // this worker only
							event(fmt.Sprintf("shared-%d", (round+1)%3)), // overlaps other rounds
						}
						out, err := c.Transform(evs)
						if err != nil {
							errs <- err
							return
						}
						for i := range out {
							v, err := ParseSealed(out[i].Actor.ID)
							if err != nil {
								errs <- err
								return
							}
							// Committed before return (a single node's
							// is queued for the next batch: flushed here).
							if tc.local {
								if err := st.FlushQueuedKV(); err != nil {
									errs <- err
									return
								}
							}
							if _, err := st.Get(slot(prefixDataKey, v.KeyID)); err != nil {
								errs <- fmt.Errorf("%s: data key %s not committed when Transform returned: %w", evs[i].Actor.ID, v.KeyID, err)
								return
							}
							got := out[i]
							c.Reveal(&got, true)
							if got.Actor.ID != evs[i].Actor.ID {
								errs <- fmt.Errorf("revealed %q, want %q", got.Actor.ID, evs[i].Actor.ID)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			subjects := 0
			for round := range rounds {
				names := []string{fmt.Sprintf("shared-%d", round)}
				for w := range workers {
					names = append(names, fmt.Sprintf("own-%d-%d", round, w))
					if w%2 == 0 {
						names = append(names, fmt.Sprintf("pair-%d-%d", round, w/2))
					}
				}
				for _, s := range names {
					subjects++
					if ids := subjectKeyIDs(t, c, s); len(ids) != 1 {
						t.Errorf("subject %s has %d data keys, want 1: %v", s, len(ids), ids)
					}
				}
			}
			if tc.local {
				return // LocalCommitter writes are not counted
			}
			// Not a timing assertion: with 16 workers and one write at a
			// time, some writes must carry several subjects.
			t.Logf("%d subjects, %d writes", subjects, r.calls.Load())
			if n := r.calls.Load(); n >= int64(subjects) {
				t.Errorf("%d writes for %d subjects: creations were not coalesced", n, subjects)
			}
		})
	}
}

// TestSubjectIndexAcrossRestartAndErasure: the index, reloaded at
// start, still finds existing keys (no second key for a known subject)
// and knows new subjects have none; an erased subject gets one new key.
func TestSubjectIndexAcrossRestartAndErasure(t *testing.T) {
	dir := t.TempDir()
	mk := randKey(t)
	e := newEnv(t, dir, Config{}, mk)
	r := e.append(t, event("alice"), event("bob"))
	aliceKey := subjectKeyIDs(t, e.c, "alice")
	e.close()

	e = newEnv(t, dir, Config{}, mk)
	if n := e.c.index.size(); n != 2 {
		t.Fatalf("index holds %d lookups after restart, want 2", n)
	}
	cur, err := e.c.currentKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subject string
		present bool
	}{{"alice", true}, {"bob", true}, {"carol", false}} {
		l := cur.subjectLookupRaw(tc.subject)
		if present, known := e.c.index.has(lookupHash([]byte(fmt.Sprintf("%x", l[:])))); !known || present != tc.present {
			t.Errorf("index has %s = %v (known %v), want %v", tc.subject, present, known, tc.present)
		}
	}
	r2 := e.append(t, event("alice"), event("carol"))
	if got := subjectKeyIDs(t, e.c, "alice"); len(got) != 1 || got[0] != aliceKey[0] {
		t.Fatalf("alice's keys after restart: %v, want %v", got, aliceKey)
	}
	if got, _ := e.read(t, r2[0].Index, false); got.Actor.ID != "alice" {
		t.Fatalf("alice after restart reads %q", got.Actor.ID)
	}

	if _, err := e.c.Erase(context.Background(), "alice", "erasure-1"); err != nil {
		t.Fatal(err)
	}
	// The index still says "present" for alice (stale): the scan finds
	// nothing and exactly one new key is made.
	r3 := e.append(t, event("alice"), event("alice"))
	after := subjectKeyIDs(t, e.c, "alice")
	if len(after) != 1 || after[0] == aliceKey[0] {
		t.Fatalf("alice's keys after erasure and a new event: %v (erased: %v)", after, aliceKey)
	}
	for _, i := range []uint64{r[0].Index, r2[0].Index} {
		if got, _ := e.read(t, i, false); got.Actor.ID != Erased {
			t.Errorf("entry %d reads %q after erasure", i, got.Actor.ID)
		}
	}
	if got, _ := e.read(t, r3[1].Index, false); got.Actor.ID != "alice" {
		t.Errorf("new alice event reads %q", got.Actor.ID)
	}
	e.close()

	e = newEnv(t, dir, Config{}, mk)
	e.append(t, event("alice"))
	if got := subjectKeyIDs(t, e.c, "alice"); len(got) != 1 || got[0] != after[0] {
		t.Fatalf("alice's keys after a second restart: %v, want %v", got, after)
	}
}

// TestSubjectIndexSeesOtherNodes: keys another node created reach the
// index through Options.Watch (a replicated write applied here) or, after
// a snapshot replaced the store, through a reload: this node uses them
// instead of creating second keys.
func TestSubjectIndexSeesOtherNodes(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	master, _ := NewMasterKeys(randKey(t))
	r := &replicated{st: st}
	var restored func()
	here, err := New(Options{Master: master, Store: st, Commit: r, Logger: quiet(),
		Watch: func(applied func([]ledger.KV), re func()) { r.watch(applied, re); restored = re }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.Transform([]ledger.Event{event("first")}); err != nil {
		t.Fatal(err)
	}
	// The other node shares the store's content (as Raft makes it) and
	// writes through the same replication.
	other, err := New(Options{Master: master, Store: st, Commit: r, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Transform([]ledger.Event{event("replicated")}); err != nil {
		t.Fatal(err)
	}
	// A write this node never saw being applied (a snapshot install).
	silent, err := New(Options{Master: master, Store: st, Commit: ledger.LocalCommitter{Store: st}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Transform([]ledger.Event{event("from-snapshot")}); err != nil {
		t.Fatal(err)
	}
	if err := st.FlushQueuedKV(); err != nil { // as its next leaf batch would
		t.Fatal(err)
	}
	restored()
	for _, s := range []string{"replicated", "from-snapshot"} {
		want := subjectKeyIDs(t, here, s)
		out, err := here.Transform([]ledger.Event{event(s)})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := ParseSealed(out[0].Actor.ID)
		if got := subjectKeyIDs(t, here, s); len(want) != 1 || len(got) != 1 || v.KeyID != want[0] {
			t.Errorf("%s: keys before %v, after %v; event under %s", s, want, got, v.KeyID)
		}
	}
}

// TestCreationErrorIsReported: a failed key write fails the appends
// that needed it and leaves nothing half-made: the next attempt creates
// the key.
func TestCreationErrorIsReported(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	master, _ := NewMasterKeys(randKey(t))
	f := &failing{inner: ledger.LocalCommitter{Store: st}}
	c, err := New(Options{Master: master, Store: st, Commit: f, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transform([]ledger.Event{event("warm")}); err != nil {
		t.Fatal(err)
	}
	f.fail.Store(true)
	if _, err := c.Transform([]ledger.Event{event("dave")}); !errors.Is(err, errInjected) {
		t.Fatalf("Transform with a failing write: %v", err)
	}
	f.fail.Store(false)
	out, err := c.Transform([]ledger.Event{event("dave")})
	if err != nil {
		t.Fatal(err)
	}
	c.Reveal(&out[0], false)
	if out[0].Actor.ID != "dave" || len(subjectKeyIDs(t, c, "dave")) != 1 {
		t.Fatalf("after a failed write: %q, keys %v", out[0].Actor.ID, subjectKeyIDs(t, c, "dave"))
	}
}

var errInjected = errors.New("injected write failure")

type failing struct {
	inner ledger.LocalCommitter
	fail  atomic.Bool
}

func (f *failing) CommitKV(ctx context.Context, ops []ledger.KV) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.inner.CommitKV(ctx, ops)
}

// TestV1StillReads: values sealed in the v1 form (by earlier versions)
// decrypt, are among StoredForms, and read Erased after an erasure, like
// the v2 values written now; a keyless v2 value without its event's key
// id, or moved to another field or event, does not decrypt.
func TestV1StillReads(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	r := e.append(t, event("vic"))
	now := decode(t, e, r[0].Index)
	id := keyOf(t, now.Actor.ID)
	if v, _ := ParseSealed(now.Actor.ID); v.Version != formatV2 || keyOf(t, now.Actor.IP) != "" {
		t.Fatalf("actor.id %q, ip %q: want v2, naming the key once", now.Actor.ID, now.Actor.IP)
	}
	dk, _ := e.c.dataKey(id)
	var nbuf [nonceSize]byte
	v1 := func(field, value string) string {
		return sealWith(dk.aead(), ClassPersonal, dk.id, field, value, dk.detNonce(nbuf[:0], field, value))
	}
	var rnd nonces
	var sl sealer
	old := event("vic")
	old.Actor.ID, old.Actor.IP = v1("actor.id", "vic"), v1("actor.ip", old.Actor.IP)
	old.Actor.Session = sl.seal(dk.aead(), ClassPersonal, dk.id, aad(ClassPersonal, "actor.session"), old.Actor.Session, rnd.next())
	old.Actor.UserAgent = ""
	old.Action.Metadata = map[string]string{"password": sl.seal(dk.aead(), ClassSensitive, dk.id, aad(ClassSensitive, "metadata.password"), "pw", rnd.next())}
	got := old
	e.c.Reveal(&got, true)
	if got.Actor.ID != "vic" || got.Actor.IP != "203.0.113.77" || got.Actor.Session != "sess-vic" || got.Action.Metadata["password"] != "pw" {
		t.Fatalf("v1 values read %+v %v", got.Actor, got.Action.Metadata)
	}
	forms, err := e.c.StoredForms("vic", "actor.ip", "203.0.113.77")
	if err != nil || !slices.Contains(forms, old.Actor.IP) || !slices.Contains(forms, now.Actor.IP) {
		t.Fatalf("StoredForms = %v, %v; want the v1 %q and the v2 %q", forms, err, old.Actor.IP, now.Actor.IP)
	}

	for _, tc := range []struct {
		name string
		edit func(ev *ledger.Event)
	}{
		{"keyless without its key id", func(ev *ledger.Event) { ev.Actor.ID = "" }},
		{"keyless under another key", func(ev *ledger.Event) { ev.Actor.ID = decode(t, e, e.append(t, event("walt"))[0].Index).Actor.ID }},
		{"moved to another field", func(ev *ledger.Event) { ev.Actor.IP, ev.Actor.Session = ev.Actor.Session, ev.Actor.IP }},
	} {
		ev := now
		tc.edit(&ev)
		e.c.Reveal(&ev, true)
		if ev.Actor.IP != Undecryptable {
			t.Errorf("%s: ip reads %q", tc.name, ev.Actor.IP)
		}
	}

	if _, err := e.c.Erase(context.Background(), "vic", "erasure"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []ledger.Event{old, now} {
		e.c.Reveal(&ev, true)
		if ev.Actor.ID != Erased || ev.Actor.IP != Erased || ev.Actor.Session != Erased {
			t.Errorf("after erasure: %+v", ev.Actor)
		}
	}
}

// TestCTRMatchesStdlib: the v2 form's CTR is the standard one.
func TestCTRMatchesStdlib(t *testing.T) {
	key := randKey(t)
	b, _ := aes.NewCipher(key)
	for _, iv := range [][sivSize]byte{{1, 2, 3}, {15: 0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}} {
		for n := range 100 {
			src := make([]byte, n)
			rand.Read(src)
			want := make([]byte, n)
			cipher.NewCTR(b, iv[:]).XORKeyStream(want, src)
			got := make([]byte, n)
			ctrXOR(b, &iv, got, src)
			if !bytes.Equal(got, want) {
				t.Fatalf("iv %x, %d bytes: ctrXOR differs from cipher.NewCTR", iv, n)
			}
		}
	}
}

// TestLearnsKeysFromReplicatedWrites: a data key another node created
// reaches this node through the replicated write, and this node's first
// event of that subject uses it without a store scan.
func TestLearnsKeysFromReplicatedWrites(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	master, _ := NewMasterKeys(randKey(t))
	r := &replicated{st: st}
	here, err := New(Options{Master: master, Store: st, Commit: r, Logger: quiet(),
		Watch: func(applied func([]ledger.KV), re func()) { r.watch(applied, re) }})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Options{Master: master, Store: st, Commit: r, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.Transform([]ledger.Event{event("settle")}); err != nil {
		t.Fatal(err) // loads this node's caches before the other's write
	}
	if _, err := other.Transform([]ledger.Event{event("lena")}); err != nil {
		t.Fatal(err)
	}
	want := subjectKeyIDs(t, here, "lena")
	scans := &scanCounter{KVStore: here.kv}
	here.kv = scans
	out, err := here.Transform([]ledger.Event{event("lena")})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyOf(t, out[0].Actor.ID); len(want) != 1 || got != want[0] {
		t.Fatalf("sealed under %s, want the other node's key %v", got, want)
	}
	if n := scans.scans.Load(); n != 0 {
		t.Fatalf("%d store scans for a key learnt from a replicated write", n)
	}

	// An erasure forgets what was learnt.
	if _, err := other.Erase(context.Background(), "lena", "x"); err != nil {
		t.Fatal(err)
	}
	out, err = here.Transform([]ledger.Event{event("lena")})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyOf(t, out[0].Actor.ID); got == want[0] {
		t.Fatalf("sealed under the erased key %s", got)
	}
}

type scanCounter struct {
	KVStore
	scans atomic.Int64
}

func (k *scanCounter) ScanKV(prefix []byte, fn func(key, value []byte) error) error {
	k.scans.Add(1)
	return k.KVStore.ScanKV(prefix, fn)
}

// TestEraseCoversQueuedKeys: on a single node a new subject's data key
// waits in the store's queue for the next leaf batch (CommitKVAhead); an
// erasure right after the Transform that made it, before any batch,
// still destroys it, and the key is not written back afterwards.
func TestEraseCoversQueuedKeys(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	out, err := e.c.Transform([]ledger.Event{event("zed")})
	if err != nil {
		t.Fatal(err)
	}
	id := keyOf(t, out[0].Actor.ID)
	ids, err := e.c.Erase(context.Background(), "zed", "erasure-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != id {
		t.Fatalf("erased %v, want the queued key %s", ids, id)
	}
	e.append(t, event("other")) // a leaf batch: the queue is empty by now
	if _, err := e.store.Get(slot(prefixDataKey, id)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the erased key is in the store: %v", err)
	}
	got := out[0]
	e.c.Reveal(&got, true)
	if got.Actor.ID != Erased {
		t.Fatalf("the erased subject reads %q", got.Actor.ID)
	}
}
