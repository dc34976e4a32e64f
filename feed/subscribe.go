package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// Log is the part of *ledger.Store the feed reads. Its contract is the
// Store's: State is the committed state, Changed is closed at the next
// commit, ScanLeaves visits committed entries in index order.
type Log interface {
	State() ledger.TreeState
	Changed() <-chan struct{}
	ScanLeaves(ctx context.Context, from uint64, fn func(index uint64, leaf []byte) error) error
	InclusionProof(index, size uint64) ([]merkle.Hash, error)
}

// Checkpoints is the part of *ledger.Ledger that proofs need: the newest
// signed checkpoint, and a wait for one covering at least size leaves.
type Checkpoints interface {
	Checkpoint() *ledger.Checkpoint
	WaitCheckpoint(ctx context.Context, size uint64) (*ledger.Checkpoint, error)
}

// Options configure a Subscription.
type Options struct {
	// Buffer is how many entries one read from the store fetches ahead
	// of the consumer (default 1024). Nothing more is held in memory:
	// entries past it are read when the consumer asks for them.
	Buffer int
	// Follow waits for new entries at the end of the log. Without it
	// the subscription ends (io.EOF) at the size the log had when
	// Subscribe was called.
	Follow bool
	// Proofs, when set, makes every item carry an inclusion proof
	// against a signed checkpoint from it; only entries a checkpoint
	// already covers are delivered.
	Proofs Checkpoints
}

// Item is one committed entry as the feed delivers it.
type Item struct {
	Index    uint64
	Leaf     []byte // canonical leaf bytes, verbatim
	LeafHash merkle.Hash
	Entry    *ledger.Entry

	// With Options.Proofs: the inclusion proof of LeafHash at Index in
	// the tree of Checkpoint.Size leaves.
	Proof      []merkle.Hash
	Checkpoint *ledger.Checkpoint

	json     []byte // JSON's cache
	jsonLeaf bool
}

// JSON returns the item's Record as JSON (MarshalRecord), computed once
// and cached: the runner encodes the next batch while the current one is
// delivered. Not safe for concurrent first calls.
func (it *Item) JSON(withLeaf bool) []byte {
	if it.json == nil || it.jsonLeaf != withLeaf {
		it.json, it.jsonLeaf = MarshalRecord(it, withLeaf), withLeaf
	}
	return it.json
}

// Subscription reads committed entries in index order, pulled by its
// consumer: it reads at most Options.Buffer entries ahead and only when
// asked, so a slow consumer slows the reads, never the appends, and
// costs bounded memory. It starts no goroutine; it is not safe for
// concurrent use.
type Subscription struct {
	log  Log
	opts Options
	next uint64 // index of the next entry to return
	end  uint64 // without Follow: stop here
	buf  []*Item
}

// errFull stops a scan once the buffer is full.
var errFull = errors.New("feed: buffer full")

// Subscribe starts a subscription at index from. from may lie beyond the
// end of the log; with Follow the subscription waits for it.
func Subscribe(log Log, from uint64, opts Options) *Subscription {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	s := &Subscription{log: log, opts: opts, next: from}
	if !opts.Follow {
		s.end = log.State().Size
		if opts.Proofs != nil {
			s.end = min(s.end, opts.Proofs.Checkpoint().Size)
		}
	}
	return s
}

// Position is the index of the next entry Next would return.
func (s *Subscription) Position() uint64 {
	if len(s.buf) > 0 {
		return s.buf[0].Index
	}
	return s.next
}

// Next returns the next entry, waiting for it when following. It
// returns io.EOF at the end of a subscription without Follow, and the
// context's error when ctx ends first.
func (s *Subscription) Next(ctx context.Context) (*Item, error) {
	items, err := s.NextBatch(ctx, 1, 0)
	if err != nil {
		return nil, err
	}
	return items[0], nil
}

// NextBatch returns between 1 and max consecutive entries, waiting for
// the first one. When fewer than max are ready, it waits up to linger
// for more before returning what it has.
func (s *Subscription) NextBatch(ctx context.Context, max int, linger time.Duration) ([]*Item, error) {
	if max <= 0 {
		max = 1
	}
	if err := s.fill(ctx, true); err != nil {
		return nil, err
	}
	if len(s.buf) < max && linger > 0 {
		lctx, cancel := context.WithTimeout(ctx, linger)
		for len(s.buf) < max && len(s.buf) < s.opts.Buffer {
			if s.wait(lctx) != nil {
				break
			}
			if _, err := s.read(lctx); err != nil {
				break // the next call reports it if it persists
			}
		}
		cancel()
	}
	n := min(max, len(s.buf))
	out := make([]*Item, n)
	copy(out, s.buf[:n])
	clear(s.buf[:n])
	s.buf = s.buf[n:]
	return out, nil
}

// fill reads what is available into the buffer. With block it waits
// until at least one entry is buffered.
func (s *Subscription) fill(ctx context.Context, block bool) error {
	for {
		if len(s.buf) >= s.opts.Buffer {
			return nil
		}
		if !s.opts.Follow && s.next >= s.end {
			if len(s.buf) > 0 {
				return nil
			}
			return io.EOF
		}
		n, err := s.read(ctx)
		if err != nil {
			return err
		}
		if n > 0 || len(s.buf) > 0 || !block {
			return nil
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}

// limit is the size up to which entries may be delivered now, with the
// checkpoint that proves them.
func (s *Subscription) limit() (uint64, *ledger.Checkpoint) {
	var size uint64
	var cp *ledger.Checkpoint
	if s.opts.Proofs != nil {
		cp = s.opts.Proofs.Checkpoint()
		size = cp.Size
	} else {
		size = s.log.State().Size
	}
	if !s.opts.Follow {
		size = min(size, s.end)
	}
	return size, cp
}

// wait blocks until more entries may be available.
func (s *Subscription) wait(ctx context.Context) error {
	if s.opts.Proofs != nil {
		_, err := s.opts.Proofs.WaitCheckpoint(ctx, s.next+1)
		return err
	}
	ch := s.log.Changed()
	if s.log.State().Size > s.next {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read appends up to the free buffer space of committed entries.
func (s *Subscription) read(ctx context.Context) (int, error) {
	size, cp := s.limit()
	if s.next >= size {
		return 0, nil
	}
	room := s.opts.Buffer - len(s.buf)
	stop := min(size, s.next+uint64(room))
	n := 0
	// The items of one read, and copies of their leaves, come from a few
	// shared allocations rather than two per entry.
	var a itemAlloc
	a.items = make([]Item, 0, stop-s.next)
	err := s.log.ScanLeaves(ctx, s.next, func(index uint64, leaf []byte) error {
		if index >= stop {
			return errFull
		}
		it, err := a.newItem(index, leaf)
		if err != nil {
			return err
		}
		if cp != nil {
			if it.Proof, err = s.log.InclusionProof(index, cp.Size); err != nil {
				return fmt.Errorf("feed: proof of %d in %d: %w", index, cp.Size, err)
			}
			it.Checkpoint = cp
		}
		s.buf = append(s.buf, it)
		s.next = index + 1
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return n, err
	}
	return n, nil
}

// itemAlloc hands out the items of one read and copies of their leaves
// from shared slabs.
type itemAlloc struct {
	items  []Item // its capacity is never exceeded: pointers stay valid
	leaves []byte
}

// newItem decodes a leaf; the leaf is copied (scans reuse their buffers).
func (a *itemAlloc) newItem(index uint64, leaf []byte) (*Item, error) {
	if cap(a.leaves)-len(a.leaves) < len(leaf) {
		// Room for this read's remaining items if they are about this
		// size, at most 32 KiB (at least the leaf) a slab.
		left := max(1, cap(a.items)-len(a.items))
		a.leaves = make([]byte, 0, max(len(leaf), min(32<<10, left*len(leaf)*5/4)))
	}
	start := len(a.leaves)
	a.leaves = append(a.leaves, leaf...)
	leaf = a.leaves[start:len(a.leaves):len(a.leaves)]
	e, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		return nil, fmt.Errorf("feed: entry %d: %w", index, err)
	}
	it := Item{Index: index, Leaf: leaf, LeafHash: merkle.LeafHash(leaf), Entry: e}
	if len(a.items) == cap(a.items) {
		return &it, nil
	}
	a.items = append(a.items, it)
	return &a.items[len(a.items)-1], nil
}
