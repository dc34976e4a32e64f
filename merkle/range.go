package merkle

import (
	"fmt"
	"math"
	"math/bits"
)

// Range is the compact range [0, size): the O(log n) frontier of full perfect
// subtrees of a tree of size leaves, one per set bit of size. It can append
// leaf hashes, report the root at its current size, and be saved (Size,
// Hashes) and restored (RestoreRange).
//
// A Range is not safe for concurrent use; Clone it to hand a snapshot to
// another goroutine. The zero value is not usable: call NewRange.
type Range struct {
	size uint64
	// hashes[:popcount(size)] are the frontier roots, left (biggest subtree)
	// to right. A fixed array keeps Append free of allocations; 64 entries
	// cover every size that fits in a uint64.
	hashes [64]Hash
}

// NewRange returns an empty compact range (size 0).
func NewRange() *Range { return &Range{} }

// RestoreRange rebuilds a Range from the Size() and Hashes() of a saved one.
// It fails if len(hashes) != popcount(size). It cannot check that the hashes
// are the right ones: compare Root() with a trusted root if that matters.
func RestoreRange(size uint64, hashes []Hash) (*Range, error) {
	if want := bits.OnesCount64(size); len(hashes) != want {
		return nil, fmt.Errorf("merkle: range of size %d needs %d hashes, got %d", size, want, len(hashes))
	}
	r := &Range{size: size}
	copy(r.hashes[:], hashes)
	return r, nil
}

// Size returns the number of leaves in the range.
func (r *Range) Size() uint64 { return r.size }

// Hashes returns a copy of the frontier hashes, left (biggest subtree) to
// right; their IDs are RangeNodes(r.Size()).
func (r *Range) Hashes() []Hash {
	n := bits.OnesCount64(r.size)
	out := make([]Hash, n)
	copy(out, r.hashes[:n])
	return out
}

// Append adds one leaf hash at index Size(). If visit is non-nil it is called
// for every node that becomes complete because of this append, bottom-up:
// first the leaf itself (NodeID{0, size-before}), then each newly completed
// parent. Append does not allocate (when visit is nil or does not escape).
//
// Append panics if the range already holds 2^64-1 leaves, a size no log can
// reach.
func (r *Range) Append(leafHash Hash, visit func(id NodeID, h Hash)) {
	idx := r.size
	if idx == math.MaxUint64 {
		panic("merkle: compact range is full")
	}
	top := bits.OnesCount64(idx) // number of hashes in use
	h := leafHash
	if visit != nil {
		visit(NodeID{Level: 0, Index: idx}, h)
	}
	// Each trailing one bit of idx is a frontier subtree of the same size as
	// the one being carried: merge them.
	for level := uint(0); idx>>level&1 == 1; level++ {
		top--
		h = NodeHash(r.hashes[top], h)
		if visit != nil {
			visit(NodeID{Level: uint8(level + 1), Index: idx >> (level + 1)}, h)
		}
	}
	r.hashes[top] = h
	r.size = idx + 1
}

// AppendMany appends leaf hashes in order, as repeated calls to Append would.
func (r *Range) AppendMany(leafHashes []Hash, visit func(id NodeID, h Hash)) {
	for i := range leafHashes {
		r.Append(leafHashes[i], visit)
	}
}

// Root returns the root of the tree of Size() leaves: EmptyRoot() for size 0.
// It does not modify the range and does not allocate.
func (r *Range) Root() Hash {
	return foldRight(r.hashes[:bits.OnesCount64(r.size)])
}

// Clone returns an independent copy of the range.
func (r *Range) Clone() *Range {
	c := *r
	return &c
}
