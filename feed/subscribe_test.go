package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// readAll reads a subscription until io.EOF.
func readAll(t *testing.T, s *Subscription, max int) []*Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*Item
	for {
		b, err := s.NextBatch(ctx, max, 0)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b) > max {
			t.Fatalf("batch of %d, want 1..%d", len(b), max)
		}
		if len(s.buf) > s.opts.Buffer {
			t.Fatalf("buffered %d entries, more than Buffer %d", len(s.buf), s.opts.Buffer)
		}
		out = append(out, b...)
	}
}

func checkItems(t *testing.T, items []*Item, from uint64, n int) {
	t.Helper()
	if len(items) != n {
		t.Fatalf("got %d items, want %d", len(items), n)
	}
	for i, it := range items {
		want := from + uint64(i)
		if it.Index != want {
			t.Fatalf("item %d has index %d, want %d", i, it.Index, want)
		}
		if it.LeafHash != merkle.LeafHash(it.Leaf) {
			t.Fatalf("item %d: leaf hash does not match its leaf", want)
		}
		if id := fmt.Sprintf("e-%d", want); it.Entry.ID != id {
			t.Fatalf("item %d: id %q, want %q", want, it.Entry.ID, id)
		}
	}
}

func TestSubscribeRanges(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 2500, 300)
	tests := []struct {
		name   string
		from   uint64
		buffer int
		max    int
		want   int
	}{
		{"all, small buffer", 0, 7, 5, 2500},
		{"all, batch above buffer", 0, 100, 1000, 2500},
		{"from the middle", 1234, 0, 64, 1266},
		{"last entry", 2499, 0, 10, 1},
		{"at the end", 2500, 0, 10, 0},
		{"beyond the end", 9999, 0, 10, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Subscribe(l.Store, tc.from, Options{Buffer: tc.buffer})
			checkItems(t, readAll(t, s, tc.max), tc.from, tc.want)
		})
	}
}

// A subscription without Follow ends at the size it started with.
func TestSubscribeEndsAtStartSize(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 10, 10)
	s := Subscribe(l.Store, 0, Options{})
	l.Append(t, "e", 10, 10, 10)
	checkItems(t, readAll(t, s, 100), 0, 10)
}

func TestSubscribeFollow(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 100, 50)
	s := Subscribe(l.Store, 50, Options{Follow: true, Buffer: 16})
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; i < total; i += 100 {
			l.Append(t, "e", i, 100, 37)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*Item
	for len(got) < total-50 {
		b, err := s.NextBatch(ctx, 64, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	wg.Wait()
	checkItems(t, got, 50, total-50)

	// At the end, Next waits until its context ends.
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := s.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next at the end: %v, want deadline exceeded", err)
	}
	// A new entry wakes a waiting Next.
	done := make(chan *Item)
	go func() {
		it, err := s.Next(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- it
	}()
	l.Append(t, "e", total, 1, 1)
	if it := <-done; it == nil || it.Index != total {
		t.Fatalf("woke with %+v, want index %d", it, total)
	}
}

func TestSubscribeProofs(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 700, 100)
	if _, err := l.Ledger.WaitCheckpoint(context.Background(), 700); err != nil {
		t.Fatal(err)
	}
	s := Subscribe(l.Store, 0, Options{Proofs: l.Ledger, Follow: true, Buffer: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go l.Append(t, "e", 700, 300, 100)
	var got []*Item
	for len(got) < 1000 {
		b, err := s.NextBatch(ctx, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	checkItems(t, got, 0, 1000)
	for _, it := range got {
		cp, err := ledger.OpenCheckpoint(it.Checkpoint.Note, l.Keys.Verifier, "test.example/log")
		if err != nil {
			t.Fatalf("entry %d: checkpoint: %v", it.Index, err)
		}
		if err := merkle.VerifyInclusion(it.LeafHash, it.Index, cp.Size, it.Proof, cp.Root); err != nil {
			t.Fatalf("entry %d: proof against size %d: %v", it.Index, cp.Size, err)
		}
		// A flipped bit in the leaf hash must fail.
		bad := it.LeafHash
		bad[0] ^= 1
		if merkle.VerifyInclusion(bad, it.Index, cp.Size, it.Proof, cp.Root) == nil {
			t.Fatalf("entry %d: proof verified a wrong leaf hash", it.Index)
		}
	}
}

func TestSubscribeCorruptLeaf(t *testing.T) {
	fake := &fakeLog{size: 3, leaves: map[uint64][]byte{0: {0x01}, 1: nil, 2: nil}}
	s := Subscribe(fake, 0, Options{})
	if _, err := s.Next(context.Background()); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("corrupt leaf: %v, want ErrInvalid", err)
	}
}

// fakeLog serves fixed leaves; a struct with fields, per house style.
type fakeLog struct {
	size   uint64
	leaves map[uint64][]byte
}

func (f *fakeLog) State() ledger.TreeState  { return ledger.TreeState{Size: f.size} }
func (f *fakeLog) Changed() <-chan struct{} { return make(chan struct{}) }
func (f *fakeLog) ScanLeaves(ctx context.Context, from uint64, fn func(uint64, []byte) error) error {
	for i := from; i < f.size; i++ {
		if err := fn(i, f.leaves[i]); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeLog) InclusionProof(index, size uint64) ([]merkle.Hash, error) { return nil, nil }
