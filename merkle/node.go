package merkle

import (
	"fmt"
	"math/bits"
)

// NodeID names a node of the tree: level 0 are leaves; node (L, i) covers
// leaves [i<<L, (i+1)<<L). Only full (perfect) subtrees have a NodeID that
// storage can hold; the roots of non-full subtrees on the right edge are
// "ephemeral" and are recomputed from full nodes (see Nodes).
type NodeID struct {
	Level uint8
	Index uint64
}

// String returns "(level,index)".
func (id NodeID) String() string { return fmt.Sprintf("(%d,%d)", id.Level, id.Index) }

// Parent returns the ID of the node one level up that contains id.
func (id NodeID) Parent() NodeID { return NodeID{Level: id.Level + 1, Index: id.Index >> 1} }

// Sibling returns the ID of the other child of id's parent.
func (id NodeID) Sibling() NodeID { return NodeID{Level: id.Level, Index: id.Index ^ 1} }

// Coverage returns the leaf range [begin, end) under the node. For nodes
// whose range reaches past 2^64 the end wraps; such nodes never occur in a
// tree whose size fits in a uint64.
func (id NodeID) Coverage() (begin, end uint64) {
	return id.Index << id.Level, (id.Index + 1) << id.Level
}

// RangeNodes returns the IDs of the full nodes that make up the compact range
// [0, size), left (biggest) to right: one node per set bit of size, from the
// most significant bit down. They are the nodes whose hashes Range.Hashes()
// holds at that size.
func RangeNodes(size uint64) []NodeID {
	ids := make([]NodeID, 0, bits.OnesCount64(size))
	return appendRangeNodes(ids, 0, size)
}

// appendRangeNodes appends, left to right, the decomposition of [begin, end)
// into perfect subtrees, where begin is a multiple of 2^Len(end-begin) (true
// for begin=0 and for the right part of a fork's sibling).
func appendRangeNodes(ids []NodeID, begin, end uint64) []NodeID {
	for rest := end - begin; rest != 0; {
		level := uint(bits.Len64(rest)) - 1
		ids = append(ids, NodeID{Level: uint8(level), Index: begin >> level})
		begin += 1 << level
		rest &^= 1 << level
	}
	return ids
}

// RootFromNodes computes the root of a tree of size leaves from the hashes of
// the full nodes of RangeNodes(size), left to right (the list Range.Hashes()
// holds at that size). It lets storage that keeps node hashes compute the root
// at any old size. It fails if len(hashes) != popcount(size).
func RootFromNodes(size uint64, hashes []Hash) (Hash, error) {
	if want := bits.OnesCount64(size); len(hashes) != want {
		return Hash{}, fmt.Errorf("merkle: tree size %d needs %d range hashes, got %d", size, want, len(hashes))
	}
	return foldRight(hashes), nil
}

// foldRight combines subtree roots listed left to right into one root:
// NodeHash(h[0], NodeHash(h[1], ... NodeHash(h[n-2], h[n-1]))).
// An empty list gives the empty-tree root.
func foldRight(hashes []Hash) Hash {
	if len(hashes) == 0 {
		return emptyRoot
	}
	h := hashes[len(hashes)-1]
	for i := len(hashes) - 2; i >= 0; i-- {
		h = NodeHash(hashes[i], h)
	}
	return h
}

// HashFullSubtree returns the root of a perfect subtree given the hashes of
// its bottom row, left to right. len(hashes) must be a power of two >= 1.
// The input slice is not modified.
func HashFullSubtree(hashes []Hash) (Hash, error) {
	n := len(hashes)
	if n == 0 || n&(n-1) != 0 {
		return Hash{}, fmt.Errorf("merkle: full subtree needs a power-of-two number of hashes, got %d", n)
	}
	return hashPerfect(hashes), nil
}

// hashPerfect hashes a power-of-two-long row without allocating, using a
// small stack of partial results (at most 64 entries).
func hashPerfect(row []Hash) Hash {
	var stack [65]Hash
	top := 0
	for i, h := range row {
		// Merge as many times as i+1 has trailing zeros.
		for k := uint64(i) + 1; k&1 == 0; k >>= 1 {
			top--
			h = NodeHash(stack[top], h)
		}
		stack[top] = h
		top++
	}
	return stack[0]
}
