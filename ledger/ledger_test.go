package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	tdproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/merkle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recomputeRoot hashes every stored leaf into a fresh range.
func recomputeRoot(t *testing.T, st *Store) (merkle.Hash, [][]byte) {
	t.Helper()
	rng := merkle.NewRange()
	var leaves [][]byte
	err := st.ScanLeaves(context.Background(), 0, func(i uint64, leaf []byte) error {
		rng.Append(merkle.LeafHash(leaf), nil)
		leaves = append(leaves, append([]byte(nil), leaf...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rng.Root(), leaves
}

func TestConcurrentAppends(t *testing.T) {
	keys := newTestKeys(t)
	l, st := openTestLedger(t, t.TempDir(), keys, StoreOptions{})
	const workers, total = 8, 10000
	var (
		mu   sync.Mutex
		seen = make(map[uint64]string)
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				// Mix single appends and small batches.
				n := 1 + i%3
				if i+n*workers > total {
					n = 1
				}
				evs := []Event{testEvent(i)}
				res, err := l.Append(context.Background(), evs)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, r := range res {
					if prev, dup := seen[r.Index]; dup {
						errs <- errors.New("index " + prev + " assigned twice")
					}
					seen[r.Index] = r.ID
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != total {
		t.Fatalf("%d distinct indices, want %d", len(seen), total)
	}
	for i := range uint64(total) {
		if _, ok := seen[i]; !ok {
			t.Fatalf("index %d missing: indices not contiguous", i)
		}
	}
	state := st.State()
	if state.Size != total {
		t.Fatalf("size %d, want %d", state.Size, total)
	}
	root, leaves := recomputeRoot(t, st)
	if root != state.Root {
		t.Fatalf("stored root %s, recomputed %s", state.Root, root)
	}
	cp, err := l.WaitCheckpoint(context.Background(), total)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := OpenCheckpoint(cp.Note, keys.verifier, "test.example/log")
	if err != nil || opened.Size != total || opened.Root != root {
		t.Fatalf("checkpoint %+v, %v", opened, err)
	}
	for i, leaf := range leaves {
		proof, err := st.InclusionProof(uint64(i), cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		lh := merkle.LeafHash(leaf)
		if err := merkle.VerifyInclusion(lh, uint64(i), cp.Size, proof, cp.Root); err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		if err := tdproof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), cp.Size, lh[:], toBytes(proof), cp.Root[:]); err != nil {
			t.Fatalf("index %d (transparency-dev): %v", i, err)
		}
		if id, _ := LeafID(leaf); seen[uint64(i)] != id {
			t.Fatalf("index %d holds id %q, append returned %q", i, id, seen[uint64(i)])
		}
	}
}

func toBytes(hs []merkle.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func TestRestartKeepsTreeAndIDs(t *testing.T) {
	keys := newTestKeys(t)
	dir := t.TempDir()
	l, st := openTestLedger(t, dir, keys, StoreOptions{})
	var evs []Event
	for i := range 700 { // crosses two full tiles and leaves a partial one
		e := testEvent(i)
		e.ID = "fixed-" + string(rune('a'+i%26)) + "-" + itoa(i)
		evs = append(evs, e)
	}
	first, err := l.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	old, err := l.WaitCheckpoint(context.Background(), 700)
	if err != nil {
		t.Fatal(err)
	}
	closeLedger(t, l, st)

	l, st = openTestLedger(t, dir, keys, StoreOptions{})
	if s := st.State(); s.Size != 700 || s.Root != old.Root {
		t.Fatalf("after restart: size %d root %s, want 700 %s", s.Size, s.Root, old.Root)
	}
	// Same ids again: nothing appended, original indices returned.
	again, err := l.Append(context.Background(), evs[:10])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !r.Duplicate || r.Index != first[i].Index || r.LeafHash != first[i].LeafHash || string(r.Signature) != string(first[i].Signature) {
			t.Fatalf("retry %d: %+v, want duplicate of %+v", i, r, first[i])
		}
	}
	if _, err := l.Append(context.Background(), []Event{testEvent(1)}); err != nil {
		t.Fatal(err)
	}
	cur, err := l.WaitCheckpoint(context.Background(), 701)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := st.ConsistencyProof(old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(old.Size, cur.Size, proof, old.Root, cur.Root); err != nil {
		t.Fatal(err)
	}
	if err := tdproof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cur.Size, toBytes(proof), old.Root[:], cur.Root[:]); err != nil {
		t.Fatal(err)
	}
	// Every older root is reachable, and consistent with the newest.
	for _, size := range []uint64{1, 2, 255, 256, 257, 512, 699} {
		r, err := st.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.ConsistencyProof(size, cur.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyConsistency(size, cur.Size, p, r, cur.Root); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestInvalidBatchWritesNothing(t *testing.T) {
	keys := newTestKeys(t)
	l, st := openTestLedger(t, t.TempDir(), keys, StoreOptions{})
	if _, err := l.Append(context.Background(), []Event{testEvent(0)}); err != nil {
		t.Fatal(err)
	}
	before := st.State()
	bad := testEvent(2)
	bad.Action.Result = "perhaps"
	_, err := l.Append(context.Background(), []Event{testEvent(1), bad, testEvent(3)})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "events[1].action.result" {
		t.Fatalf("err = %v, want field events[1].action.result", err)
	}
	big := testEvent(4)
	big.Action.Metadata = map[string]string{"blob": string(make([]byte, MaxEventBytes))}
	if _, err := l.Append(context.Background(), []Event{big}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized event: err = %v, want ErrTooLarge", err)
	}
	many := make([]Event, MaxBatchEvents+1)
	for i := range many {
		many[i] = testEvent(i)
	}
	if _, err := l.Append(context.Background(), many); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized batch: err = %v, want ErrTooLarge", err)
	}
	if _, err := l.Append(context.Background(), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty batch: err = %v, want ErrInvalid", err)
	}
	if after := st.State(); after != before {
		t.Fatalf("state changed by rejected appends: %+v -> %+v", before, after)
	}
	if _, err := st.InclusionProof(0, before.Size+1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("proof beyond size: %v", err)
	}
	if _, err := st.Leaf(before.Size); !errors.Is(err, ErrNotFound) {
		t.Fatalf("leaf beyond size: %v", err)
	}
}

func TestApplyIsDeterministicAndReplayIsNoop(t *testing.T) {
	keys := newTestKeys(t)
	// Leaf-hash groups of 256 entries: ~20 of them complete, some while b
	// has just reopened (its recent hashes rebuilt from the tiles).
	opts := StoreOptions{NoSync: true, hashGroupBits: 8}
	a, err := OpenStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dirB := t.TempDir()
	b, err := OpenStore(dirB, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	var batches [][][]byte
	for n := range 40 {
		var leaves [][]byte
		for i := range n * 7 % 300 {
			e := Entry{Event: testEvent(i), ReceivedAt: int64(n)}
			e.ID = "b" + itoa(n) + "-" + itoa(i%250) // some duplicates inside batches
			leaves = append(leaves, keys.hmac.sealLeaf(&e))
		}
		if len(leaves) == 0 {
			continue
		}
		batches = append(batches, leaves)
	}
	for i, leaves := range batches {
		if i%9 == 8 {
			b.Close()
			if b, err = OpenStore(dirB, opts); err != nil {
				t.Fatal(err)
			}
		}
		ra, err := a.Apply(uint64(i+1), leaves)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Apply(uint64(i+1), leaves)
		if err != nil {
			t.Fatal(err)
		}
		// Replaying on b changes nothing and answers the same.
		before := b.State()
		rr, err := b.Apply(uint64(i+1), leaves)
		if err != nil || b.State() != before {
			t.Fatalf("replay of %d: %v, state %+v -> %+v", i+1, err, before, b.State())
		}
		for j := range ra {
			if ra[j].Index != rb[j].Index || ra[j].LeafHash != rb[j].LeafHash || ra[j].Index != rr[j].Index {
				t.Fatalf("batch %d leaf %d: results differ", i, j)
			}
		}
		if a.State() != b.State() {
			t.Fatalf("batch %d: states differ: %+v vs %+v", i, a.State(), b.State())
		}
	}
	// Byte-identical stores.
	if da, db := dump(t, a), dump(t, b); da != db {
		t.Fatal("stores differ byte for byte")
	}
	if size := a.State().Size; size < 16<<8 {
		t.Fatalf("only %d entries: too few complete leaf-hash groups", size)
	}
}

func dump(t *testing.T, s *Store) string {
	it, err := s.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, it.Key()...)
		out = append(out, 0)
		out = append(out, it.Value()...)
		out = append(out, 0)
	}
	return string(out)
}

func TestMalformedLeafRejectsBatch(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys := newTestKeys(t)
	e := Entry{Event: testEvent(1)}
	e.ID = "ok"
	good := keys.hmac.sealLeaf(&e)
	for name, leaf := range map[string][]byte{"empty": {}, "bad format": {9, 1, 'x'}, "no id": {1, 0}} {
		if _, err := s.Apply(1, [][]byte{good, leaf}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if s.State().Size != 0 || s.State().LastApplied != 0 {
		t.Fatalf("state changed: %+v", s.State())
	}
}

// TestTileSegmentsSurviveRestart appends in many small batches (so partial
// tiles are written as many segments), reopens, and checks every proof.
func TestTileSegmentsSurviveRestart(t *testing.T) {
	keys := newTestKeys(t)
	dir := t.TempDir()
	l, st := openTestLedger(t, dir, keys, StoreOptions{NoSync: true})
	for i := range 300 {
		if _, err := l.Append(context.Background(), benchEvents(1+i%2)); err != nil {
			t.Fatal(err)
		}
	}
	want := st.State()
	closeLedger(t, l, st)
	_, st = openTestLedger(t, dir, keys, StoreOptions{NoSync: true})
	if got := st.State(); got != want {
		t.Fatalf("state after reopen %+v, want %+v", got, want)
	}
	root, leaves := recomputeRoot(t, st)
	if root != want.Root {
		t.Fatal("root differs from the stored leaves")
	}
	for size := uint64(1); size <= want.Size; size += 37 {
		r, err := st.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < size; i += 11 {
			p, err := st.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyInclusion(merkle.LeafHash(leaves[i]), i, size, p, r); err != nil {
				t.Fatalf("leaf %d at size %d: %v", i, size, err)
			}
		}
	}
}

// TestProofsWhileTilesFill reads proofs while appends keep filling tiles:
// a reader must never see a tile as missing in the moment the batch that
// completes it (full row written, segments deleted) becomes visible.
func TestProofsWhileTilesFill(t *testing.T) {
	keys := newTestKeys(t)
	l, st := openTestLedger(t, t.TempDir(), keys, StoreOptions{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150 && ctx.Err() == nil; i++ {
				if _, err := l.Append(ctx, benchEvents(7)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				cp := l.Checkpoint()
				if cp.Size == 0 {
					continue
				}
				idx := uint64(n*7919+r) % cp.Size
				p, err := st.InclusionProof(idx, cp.Size)
				if err != nil {
					errs <- err
					return
				}
				leaf, err := st.Leaf(idx)
				if err != nil {
					errs <- err
					return
				}
				if err := merkle.VerifyInclusion(merkle.LeafHash(leaf), idx, cp.Size, p, cp.Root); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestCheckpointCadence: while nobody waits, a checkpoint is signed at
// once after a quiet period and then at most every
// IdleCheckpointInterval; a caller that waits (WaitCheckpoint,
// FreshCheckpoint) gets one within CheckpointInterval.
func TestCheckpointCadence(t *testing.T) {
	keys := newTestKeys(t)
	st, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := New(Config{Store: st, Origin: "test.example/log", Signer: keys.signer, HMAC: keys.hmac,
		CheckpointInterval: time.Millisecond, IdleCheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first commit after a quiet period: signed at once, unasked.
	changed := l.CheckpointChanged()
	if _, err := l.Append(ctx, []Event{testEvent(1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no checkpoint after the first append")
	}
	if got := l.Checkpoint().Size; got != 1 {
		t.Fatalf("checkpoint size %d, want 1", got)
	}

	// Under load and unasked: not before the idle interval (an hour).
	if _, err := l.Append(ctx, []Event{testEvent(2)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // room for a wrong early signature
	if got := l.Checkpoint().Size; got != 1 {
		t.Fatalf("checkpoint of size %d signed while nobody waited", got)
	}

	// Asked: at once.
	cp, err := l.WaitCheckpoint(ctx, 2)
	if err != nil || cp.Size != 2 {
		t.Fatalf("WaitCheckpoint = %v, %v", cp, err)
	}
	if _, err := l.Append(ctx, []Event{testEvent(3)}); err != nil {
		t.Fatal(err)
	}
	if cp, err := l.FreshCheckpoint(ctx); err != nil || cp.Size != 3 {
		t.Fatalf("FreshCheckpoint = %v, %v", cp, err)
	}
}

// TestLargeBatchKeepsItsOrder: ids ascend with the index (some
// client-given), and every leaf holds its own event.
func TestLargeBatchKeepsItsOrder(t *testing.T) {
	l, st := openTestLedger(t, t.TempDir(), newTestKeys(t), StoreOptions{NoSync: true})
	in := make([]Event, 1500)
	for i := range in {
		in[i] = testEvent(i)
		if i%100 == 7 {
			in[i].ID = fmt.Sprintf("client-id-%04d", i)
		}
	}
	res, err := l.Append(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for i, r := range res {
		e := storedEntry(t, st, r.Index)
		if r.Index != uint64(i) || e.ID != r.ID || e.Actor.ID != in[i].Actor.ID {
			t.Fatalf("event %d: index %d, id %s (leaf's %s), actor %s", i, r.Index, r.ID, e.ID, e.Actor.ID)
		}
		if in[i].ID != "" {
			if r.ID != in[i].ID {
				t.Fatalf("event %d: id %s, want the client's %s", i, r.ID, in[i].ID)
			}
			continue
		}
		if r.ID <= prev {
			t.Fatalf("server-assigned ids do not ascend: %s after %s", r.ID, prev)
		}
		prev = r.ID
	}
}

// TestLargeBatchNamesFirstInvalid: a batch with several invalid events
// names the first, and writes nothing.
func TestLargeBatchNamesFirstInvalid(t *testing.T) {
	l, st := openTestLedger(t, t.TempDir(), newTestKeys(t), StoreOptions{NoSync: true})
	in := make([]Event, 1200)
	for i := range in {
		in[i] = testEvent(i)
	}
	for _, i := range []int{1100, 950, 301} {
		in[i].Action.Result = "perhaps"
	}
	_, err := l.Append(context.Background(), in)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "events[301].action.result" {
		t.Fatalf("err = %v, want field events[301].action.result", err)
	}
	if st.State().Size != 0 {
		t.Fatalf("%d entries written", st.State().Size)
	}
}
