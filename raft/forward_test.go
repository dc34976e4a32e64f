package raft

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestForwardReadYourWrites: an append forwarded by a follower returns
// once the follower itself has applied it, so a read on that follower
// right after the append finds the entry; concurrent appends on a
// follower (several forwards in flight) all land exactly once.
func TestForwardReadYourWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitLeader()
	f := c.followers()[0]
	for i := 0; i < 20; i++ {
		res := appendOn(t, f, events(fmt.Sprintf("ryw-%d", i), 1+i%5))
		last := res[len(res)-1].Index
		if size := f.store.State().Size; size <= last {
			t.Fatalf("append %d answered at index %d while the follower holds %d entries", i, last, size)
		}
		if _, err := f.store.Leaf(last); err != nil {
			t.Fatalf("append %d: the follower cannot read its own write at %d: %v", i, last, err)
		}
	}

	var wg sync.WaitGroup
	seen := make([][]uint64, 8)
	for w := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ctx := context.Background()
				res, err := f.ledger.Append(ctx, events(fmt.Sprintf("conc-%d-%d", w, i), 3))
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				for _, r := range res {
					seen[w] = append(seen[w], r.Index)
				}
			}
		}()
	}
	wg.Wait()
	at := map[uint64]bool{}
	for _, xs := range seen {
		for _, x := range xs {
			if at[x] {
				t.Fatalf("index %d handed out twice", x)
			}
			at[x] = true
		}
	}
	want := f.store.State().Size
	if len(at) != 8*10*3 {
		t.Fatalf("%d results, want %d", len(at), 8*10*3)
	}
	c.converge(want)
	c.sameRootsAtEverySize()
}
