package merkle

import (
	"fmt"
	"math/bits"
)

// Nodes says how to build an inclusion or consistency proof from stored
// nodes, in two steps: fetch the hash of every ID in IDs (all of them full
// nodes, which storage holds), then call Rehash.
//
// A proof needs at most one "ephemeral" node: the root of the non-full
// subtree on the right edge of the tree. Storage does not hold it; it is
// rebuilt from the full nodes IDs[Begin:End], which are listed left to right
// and hashed together right to left:
//
//	h := hash(IDs[End-1])
//	for j := End - 2; j >= Begin; j-- { h = NodeHash(hash(IDs[j]), h) }
//
// When Begin == End there is no ephemeral node (Begin and End are then 0).
// Ephem is the ID of the ephemeral node, for information only: its range
// reaches past the tree size. It is meaningful only when Begin < End.
type Nodes struct {
	IDs        []NodeID
	Begin, End int
	Ephem      NodeID
}

// InclusionNodes returns the nodes needed for the inclusion proof of leaf
// index in the tree of size leaves. It fails if index >= size.
func InclusionNodes(index, size uint64) (Nodes, error) {
	if index >= size {
		return Nodes{}, fmt.Errorf("merkle: leaf index %d out of range for tree size %d", index, size)
	}
	return proofNodes(index, 0, size, false), nil
}

// ConsistencyNodes returns the nodes needed for the consistency proof between
// the trees of size1 and size2 leaves. It fails if size1 > size2. When
// size1 == 0 or size1 == size2 the proof is empty.
func ConsistencyNodes(size1, size2 uint64) (Nodes, error) {
	if size1 > size2 {
		return Nodes{}, fmt.Errorf("merkle: consistency proof from size %d to smaller size %d", size1, size2)
	}
	if size1 == 0 || size1 == size2 {
		return Nodes{IDs: []NodeID{}}, nil
	}
	// The proof is the inclusion proof, in the tree of size2, of the root of
	// the biggest perfect subtree that ends at size1, preceded by that root
	// itself unless size1 is a power of two (then the verifier has it: it is
	// the old root).
	level := uint(bits.TrailingZeros64(size1))
	index := (size1 - 1) >> level
	return proofNodes(index, level, size2, index != 0), nil
}

// proofNodes lists the nodes proving that the full node (level, index) is
// part of the tree of size leaves, in RFC 6962 proof order (bottom-up),
// optionally preceded by the node itself. It requires (index+1)<<level <= size.
func proofNodes(index uint64, level uint, size uint64, withSeed bool) Nodes {
	// The fork is the highest ancestor of the seed that is still a full node;
	// its sibling contains leaf position size, so it is the ephemeral node
	// (or lies entirely past the end of the tree).
	inner := uint(bits.Len64(index^(size>>level))) - 1
	forkLevel := level + inner
	forkIndex := index >> inner
	begin := forkIndex << forkLevel
	end := begin + 1<<forkLevel // <= size
	nRight := bits.OnesCount64(size - end)
	nLeft := bits.OnesCount64(begin)

	n := int(inner) + nRight + nLeft
	if withSeed {
		n++
	}
	ids := make([]NodeID, 0, n)
	if withSeed {
		ids = append(ids, NodeID{Level: uint8(level), Index: index})
	}
	// Siblings of the path from the seed up to the fork.
	for l := level; l < forkLevel; l++ {
		ids = append(ids, NodeID{Level: uint8(l), Index: index>>(l-level) ^ 1})
	}
	// The full nodes of [end, size), left to right: the ephemeral node.
	b := len(ids)
	ids = appendRangeNodes(ids, end, size)
	e := len(ids)
	// The full nodes of [0, begin), nearest (lowest) first.
	for rest := begin; rest != 0; rest &= rest - 1 {
		l := uint(bits.TrailingZeros64(rest))
		ids = append(ids, NodeID{Level: uint8(l), Index: (rest >> l) - 1})
	}
	out := Nodes{IDs: ids}
	if b < e {
		out.Begin, out.End = b, e
		out.Ephem = NodeID{Level: uint8(forkLevel), Index: forkIndex ^ 1}
	}
	return out
}

// Rehash turns the fetched hashes, in the order of n.IDs, into the proof,
// collapsing hashes[Begin:End] into the ephemeral node's hash. It fails if
// len(hashes) != len(n.IDs). The input slice is not modified.
func (n Nodes) Rehash(hashes []Hash) ([]Hash, error) {
	if len(hashes) != len(n.IDs) {
		return nil, fmt.Errorf("merkle: got %d hashes for %d proof nodes", len(hashes), len(n.IDs))
	}
	if n.Begin < 0 || n.End > len(hashes) || n.Begin > n.End {
		return nil, fmt.Errorf("merkle: bad ephemeral range [%d:%d) for %d nodes", n.Begin, n.End, len(hashes))
	}
	if n.End-n.Begin <= 1 {
		return append([]Hash(nil), hashes...), nil
	}
	out := make([]Hash, 0, len(hashes)-(n.End-n.Begin)+1)
	out = append(out, hashes[:n.Begin]...)
	out = append(out, foldRight(hashes[n.Begin:n.End]))
	out = append(out, hashes[n.End:]...)
	return out, nil
}
