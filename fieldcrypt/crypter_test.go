package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// plaintexts are the personal and sensitive values of event(actor).
func plaintexts(actor string) []string {
	return []string{actor, "203.0.113.77", "sess-" + actor, "Mozilla/5.0 (" + actor + ")", "hunter2-" + actor, "4111111111111111", "078-05-1120"}
}

func TestRoundTrip(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	in := event("alice@example.com")
	orig := in
	orig.Action.Metadata = maps.Clone(in.Action.Metadata)
	res := e.append(t, in)
	if !reflect.DeepEqual(in, orig) {
		t.Fatal("Transform modified the caller's event")
	}

	got, leaf := e.read(t, res[0].Index, true)
	got.ID = ""
	if !reflect.DeepEqual(got, orig) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, orig)
	}
	for _, p := range plaintexts("alice@example.com") {
		if bytes.Contains(leaf, []byte(p)) {
			t.Errorf("leaf holds plaintext %q", p)
		}
	}
	for _, clear := range []string{"user_profile", "profile-123", "req-1", "csv"} {
		if !bytes.Contains(leaf, []byte(clear)) {
			t.Errorf("leaf lacks non-sensitive %q", clear)
		}
	}

	// Without read_sensitive: personal fields in clear, sensitive masked.
	got, _ = e.read(t, res[0].Index, false)
	if got.Actor.ID != "alice@example.com" || got.Actor.IP != "203.0.113.77" {
		t.Errorf("personal fields: %+v", got.Actor)
	}
	for _, k := range []string{"password", "creditCard", "SSN"} {
		if got.Action.Metadata[k] != Encrypted {
			t.Errorf("metadata %s = %q, want %q", k, got.Action.Metadata[k], Encrypted)
		}
	}
	if got.Action.Metadata["format"] != "csv" {
		t.Errorf("format = %q", got.Action.Metadata["format"])
	}
}

func TestStoredFormsAreDeterministic(t *testing.T) {
	// By default every personal field is searchable.
	d := newEnv(t, t.TempDir(), Config{}, randKey(t))
	dr := d.append(t, event("bob"), event("bob"))
	if a, b := decode(t, d, dr[0].Index), decode(t, d, dr[1].Index); a.Actor.IP != b.Actor.IP || a.Action.Metadata["password"] == b.Action.Metadata["password"] {
		t.Fatal("default: ip should be deterministic, the sensitive password random")
	}
	// One data key: its v1 form (older events) and its v2 forms, naming
	// the key (an event's first searchable field) or not (the others).
	if f, err := d.c.StoredForms("bob", "actor.ip", "203.0.113.77"); err != nil || len(f) != 3 || f[2] != decode(t, d, dr[0].Index).Actor.IP {
		t.Fatalf("StoredForms(actor.ip) = %v, %v", f, err)
	}

	e := newEnv(t, t.TempDir(), Config{SearchableFields: []string{"actor.id"}}, randKey(t))
	r := e.append(t, event("bob"), event("carol"), event("bob"))
	_, l0 := e.read(t, r[0].Index, false)
	forms, err := e.c.StoredForms("bob", "actor.id", "bob")
	if err != nil || len(forms) != 3 {
		t.Fatalf("StoredForms = %v, %v", forms, err)
	}
	forms = forms[1:] // actor.id is the first searchable field: v2, named
	for _, i := range []int{0, 2} {
		ent := decode(t, e, r[i].Index)
		if ent.Actor.ID != forms[0] {
			t.Errorf("event %d actor.id %q, want stored form %q", i, ent.Actor.ID, forms[0])
		}
		if ent.Actor.IP == decode(t, e, r[(i+2)%4].Index).Actor.IP && i == 0 {
			t.Error("non-searchable field encrypted deterministically")
		}
	}
	if decode(t, e, r[1].Index).Actor.ID == forms[0] {
		t.Error("carol's actor id has bob's stored form")
	}
	_ = l0
}

func decode(t testing.TB, e *env, index uint64) ledger.Event {
	t.Helper()
	leaf, err := e.store.Leaf(index)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return ent.Event
}

func TestNoSubjectUsesFieldKey(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{SubjectField: "metadata.userId"}, randKey(t))
	ev := event("svc")
	r := e.append(t, ev)
	stored := decode(t, e, r[0].Index)
	s, err := ParseSealed(stored.Actor.IP)
	if err != nil || s.KeyID[0] != 'f' || s.Class != ClassPersonal {
		t.Fatalf("actor.ip stored as %q (%v)", stored.Actor.IP, err)
	}
	got, _ := e.read(t, r[0].Index, true)
	if got.Actor.IP != ev.Actor.IP {
		t.Fatalf("ip %q", got.Actor.IP)
	}
}

func TestRotation(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{SubjectField: "none"}, randKey(t))
	r1 := e.append(t, event("dave"))
	k1 := keyOf(t, decode(t, e, r1[0].Index).Action.Metadata["password"])
	info, err := e.c.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID <= k1 {
		t.Fatalf("new key %s does not sort after %s", info.ID, k1)
	}
	r2 := e.append(t, event("dave"))
	k2 := keyOf(t, decode(t, e, r2[0].Index).Action.Metadata["password"])
	if k2 != info.ID {
		t.Fatalf("new event under %s, want the new key %s", k2, info.ID)
	}
	for _, r := range [][]ledger.AppendResult{r1, r2} {
		got, _ := e.read(t, r[0].Index, true)
		if got.Action.Metadata["password"] != "hunter2-dave" {
			t.Errorf("index %d password %q", r[0].Index, got.Action.Metadata["password"])
		}
	}
	keys, err := e.c.Keys()
	if err != nil || len(keys) != 2 || keys[0].Current || !keys[1].Current || keys[1].ID != info.ID {
		t.Fatalf("Keys = %+v, %v", keys, err)
	}
}

func keyOf(t testing.TB, stored string) string {
	t.Helper()
	s, err := ParseSealed(stored)
	if err != nil {
		t.Fatalf("%q: %v", stored, err)
	}
	return s.KeyID
}

func TestSubjectKeysFollowRotation(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	r1 := e.append(t, event("erin"))
	if _, err := e.c.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := e.append(t, event("erin"))
	d1, d2 := keyOf(t, decode(t, e, r1[0].Index).Actor.ID), keyOf(t, decode(t, e, r2[0].Index).Actor.ID)
	if d1 == d2 {
		t.Fatal("after rotation the subject kept its data key")
	}
	ids, err := e.c.Erase(context.Background(), "erin", "ev-1")
	if err != nil || len(ids) != 2 {
		t.Fatalf("Erase = %v, %v; want both data keys", ids, err)
	}
	for _, r := range [][]ledger.AppendResult{r1, r2} {
		if got, _ := e.read(t, r[0].Index, true); got.Actor.IP != Erased {
			t.Errorf("index %d ip %q after erasure", r[0].Index, got.Actor.IP)
		}
	}
}

func TestWrongMasterKey(t *testing.T) {
	dir := t.TempDir()
	good := randKey(t)
	e := newEnv(t, dir, Config{}, good)
	e.append(t, event("frank"))
	e.close()

	st := openStore(t, dir)
	defer st.Close()
	if _, err := newEnvOn(t, st, Config{}, randKey(t)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong master key: err = %v, want ErrWrongKey", err)
	}
}

func TestMasterKeyRotation(t *testing.T) {
	dir := t.TempDir()
	m1, m2 := randKey(t), randKey(t)
	e := newEnv(t, dir, Config{}, m1)
	r := e.append(t, event("gina"))
	e.close()

	// New master key current, the old one kept: rotating re-wraps.
	st := openStore(t, dir)
	e2, err := newEnvOn(t, st, Config{}, m2, m1)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if _, err := e2.c.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys, _ := e2.c.Keys()
	for _, k := range keys {
		if k.WrappedBy != MasterKeyID(m2) {
			t.Errorf("key %s still wrapped by %s", k.ID, k.WrappedBy)
		}
	}
	e2.close()

	// The old master key can now go.
	st = openStore(t, dir)
	e3, err := newEnvOn(t, st, Config{}, m2)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if got, _ := e3.read(t, r[0].Index, true); got.Action.Metadata["password"] != "hunter2-gina" {
		t.Fatalf("after master rotation: %q", got.Action.Metadata["password"])
	}
}

func TestErasure(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	var idx []uint64
	for i := 0; i < 5; i++ {
		for _, r := range e.append(t, event("henry"), event("iris")) {
			idx = append(idx, r.Index)
		}
	}
	cpBefore, err := e.ledger.WaitCheckpoint(context.Background(), e.store.State().Size)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := e.c.Erase(context.Background(), "henry", "erase-ev-1")
	if err != nil || len(ids) != 1 {
		t.Fatalf("Erase = %v, %v", ids, err)
	}
	rec, err := e.store.Get(slot(prefixErased, ids[0]))
	if err != nil || !strings.Contains(string(rec), "erase-ev-1") {
		t.Fatalf("erasure record %q, %v", rec, err)
	}
	for i, ix := range idx {
		got, leaf := e.read(t, ix, true)
		if i%2 == 0 {
			for _, v := range []string{got.Actor.ID, got.Actor.IP, got.Actor.Session, got.Actor.UserAgent, got.Action.Metadata["password"], got.Action.Metadata["SSN"]} {
				if v != Erased {
					t.Fatalf("henry's event %d still reads %q", ix, v)
				}
			}
			if got.Action.Metadata["format"] != "csv" || got.Action.Resource != "user_profile" {
				t.Fatalf("non-personal fields changed: %+v", got.Action)
			}
		} else if got.Actor.ID != "iris" || got.Action.Metadata["password"] != "hunter2-iris" {
			t.Fatalf("iris's event %d reads %+v", ix, got.Actor)
		}
		// The leaf is untouched: proofs against the old checkpoint verify.
		proof, err := e.store.InclusionProof(ix, cpBefore.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyInclusion(merkle.LeafHash(leaf), ix, cpBefore.Size, proof, cpBefore.Root); err != nil {
			t.Fatalf("inclusion of %d after erasure: %v", ix, err)
		}
	}
	// A second erasure finds nothing; new events of the subject get a new key.
	if ids, err := e.c.Erase(context.Background(), "henry", "erase-ev-2"); err != nil || len(ids) != 0 {
		t.Fatalf("second Erase = %v, %v", ids, err)
	}
	r := e.append(t, event("henry"))
	if got, _ := e.read(t, r[0].Index, true); got.Actor.ID != "henry" {
		t.Fatalf("event after erasure reads %q", got.Actor.ID)
	}
	if _, err := e.c.Erase(context.Background(), "", "x"); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("empty subject: %v", err)
	}
}

// TestErasureFlushesOtherCaches: a second Crypter on the same store (as
// another node's, which sees the same replicated writes) that cached the
// subject's key must stop decrypting after the erasure.
func TestErasureFlushesOtherCaches(t *testing.T) {
	mk := randKey(t)
	e := newEnv(t, t.TempDir(), Config{}, mk)
	r := e.append(t, event("jack"))
	master, _ := NewMasterKeys(mk)
	other, err := New(Options{Master: master, Store: e.store, Commit: ledger.LocalCommitter{Store: e.store}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ev := decode(t, e, r[0].Index)
	other.Reveal(&ev, true)
	if ev.Actor.ID != "jack" {
		t.Fatalf("other reads %q", ev.Actor.ID)
	}
	// other's encrypt cache too.
	if _, err := other.Transform([]ledger.Event{event("jack")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Erase(context.Background(), "jack", "x"); err != nil {
		t.Fatal(err)
	}
	ev = decode(t, e, r[0].Index)
	other.Reveal(&ev, true)
	if ev.Actor.ID != Erased {
		t.Fatalf("other still decrypts after erasure: %q", ev.Actor.ID)
	}
	out, err := other.Transform([]ledger.Event{event("jack")})
	if err != nil {
		t.Fatal(err)
	}
	if k := keyOf(t, out[0].Actor.ID); k == "" || keyErased(e, k) {
		t.Fatalf("other encrypted under the destroyed key %s", k)
	}
}

func keyErased(e *env, id string) bool {
	_, err := e.store.Get(slot(prefixErased, id))
	return err == nil
}

func TestTamperedCiphertext(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	r := e.append(t, event("kim"))
	ev := decode(t, e, r[0].Index)
	// Moving a sensitive value into a personal field, or flipping a bit,
	// does not decrypt.
	moved := ev
	moved.Action.ResourceID = strings.Replace(ev.Action.Metadata["password"], "enc:", "pii:", 1)
	moved.Action.Metadata = maps.Clone(ev.Action.Metadata)
	b := []byte(ev.Actor.IP)
	if b[len(b)-3] != 'A' { // another valid base64url character
		b[len(b)-3] = 'A'
	} else {
		b[len(b)-3] = 'B'
	}
	moved.Actor.IP = string(b)
	e.c.Reveal(&moved, false)
	if moved.Action.ResourceID != Undecryptable {
		t.Errorf("class-swapped value reads %q", moved.Action.ResourceID)
	}
	if moved.Actor.IP != Undecryptable {
		t.Errorf("bit-flipped value reads %q", moved.Actor.IP)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{SensitiveFields: []string{"action.result"}},
		{PersonalFields: []string{"action.type"}},
		{SensitiveFields: []string{"[bad"}},
		{SubjectField: "action.bogus"},
		{PersonalFields: []string{""}},
	} {
		if _, err := cfg.compile(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	cc, err := (&Config{SensitiveFields: []string{"*secret*", "context.requestId"}}).compile()
	if err != nil {
		t.Fatal(err)
	}
	if !cc.sensitive.metadata("MySecretThing") || cc.sensitive.metadata("password") || !cc.sensitive.hasField("context.requestId") {
		t.Error("selector matching")
	}
}

// countingKV counts the store reads a Crypter makes.
type countingKV struct {
	KVStore
	reads atomic.Int64
}

func (k *countingKV) Get(key []byte) ([]byte, error) {
	k.reads.Add(1)
	return k.KVStore.Get(key)
}

func (k *countingKV) ScanKV(prefix []byte, fn func(key, value []byte) error) error {
	k.reads.Add(1)
	return k.KVStore.ScanKV(prefix, fn)
}

// TestEvictedSubjectKeyComesBackWithoutAStoreRead: a subject dropped
// from the first cache tier gets the same data key back from the second
// without reading the store, and an erasure empties both tiers.
func TestEvictedSubjectKeyComesBackWithoutAStoreRead(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	r := e.append(t, event("kate"))
	first := keyOf(t, decode(t, e, r[0].Index).Actor.ID)

	if _, err := e.c.Transform([]ledger.Event{event("kate")}); err != nil {
		t.Fatal(err) // settles the generation check after the append's writes
	}
	kv := &countingKV{KVStore: e.c.kv}
	e.c.kv = kv
	e.c.mu.Lock()
	clear(e.c.bySubject) // as evictHalf would
	e.c.mu.Unlock()
	out, err := e.c.Transform([]ledger.Event{event("kate")})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyOf(t, out[0].Actor.ID); got != first {
		t.Fatalf("evicted subject sealed under %s, want %s", got, first)
	}
	if asStored(t, out[0]).Actor != decode(t, e, r[0].Index).Actor {
		t.Fatalf("the reopened key seals differently:\n%+v\n%+v", asStored(t, out[0]).Actor, decode(t, e, r[0].Index).Actor)
	}
	if n := kv.reads.Load(); n != 0 {
		t.Fatalf("%d store reads for an evicted subject", n)
	}
	ev := out[0]
	e.c.Reveal(&ev, true)
	if ev.Actor.ID != "kate" {
		t.Fatalf("reads %q", ev.Actor.ID)
	}

	if _, err := e.c.Erase(context.Background(), "kate", "x"); err != nil {
		t.Fatal(err)
	}
	e.c.mu.Lock()
	clear(e.c.bySubject)
	e.c.mu.Unlock()
	out, err = e.c.Transform([]ledger.Event{event("kate")})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyOf(t, out[0].Actor.ID); got == first || keyErased(e, got) {
		t.Fatalf("after erasure sealed under %s (erased key %s)", got, first)
	}
}

// TestOwnKeyWriteKeepsTheGenerationCheck: on a single node, the write
// of a new subject's data key (queued for the next batch, which counts
// in no KVWrites) changes no generation, so the next Transform reads
// nothing from the store; anyone else's write (here a rotation) still
// makes it look.
func TestOwnKeyWriteKeepsTheGenerationCheck(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	e.append(t, event("ann"))
	kv := &countingKV{KVStore: e.c.kv}
	e.c.kv = kv
	if _, err := e.c.Transform([]ledger.Event{event("bob")}); err != nil { // creates bob's key
		t.Fatal(err)
	}
	kv.reads.Store(0)
	out, err := e.c.Transform([]ledger.Event{event("bob")})
	if err != nil {
		t.Fatal(err)
	}
	if n := kv.reads.Load(); n != 0 {
		t.Fatalf("%d store reads after this Crypter's own key write", n)
	}
	first := keyOf(t, out[0].Actor.ID)
	if _, err := e.c.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out, err = e.c.Transform([]ledger.Event{event("bob")}); err != nil {
		t.Fatal(err)
	}
	if keyOf(t, out[0].Actor.ID) == first {
		t.Fatal("after a rotation bob's events still use the old field key's data key")
	}
}

// TestTransformLargeBatch: a batch of many events of the same subjects
// reads back exactly, with one data key per subject and one stored form
// per subject and value.
func TestTransformLargeBatch(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	in := make([]ledger.Event, 1200)
	for i := range in {
		in[i] = event(fmt.Sprintf("user-%d", i%97))
		if i%5 == 0 {
			in[i].Actor.ID = "" // no subject: under the field key
		}
	}
	out, err := e.c.Transform(in)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}  // subject → data key
	forms := map[string]string{} // subject → stored form of its ip
	for i := range out {
		got := out[i]
		e.c.Reveal(&got, true)
		if !reflect.DeepEqual(got, in[i]) {
			t.Fatalf("event %d reads back as %+v, want %+v", i, got, in[i])
		}
		s := in[i].Actor.ID
		if s == "" {
			continue
		}
		k := keyOf(t, out[i].Actor.ID)
		if prev, ok := keys[s]; ok && prev != k {
			t.Fatalf("%s under two data keys: %s, %s", s, prev, k)
		}
		keys[s] = k
		if prev, ok := forms[s]; ok && prev != out[i].Actor.IP {
			t.Fatalf("%s's ip stored as %q and %q", s, prev, out[i].Actor.IP)
		}
		forms[s] = out[i].Actor.IP
	}
}
