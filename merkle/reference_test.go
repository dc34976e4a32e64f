package merkle

// A reference implementation written directly from the definitions in
// RFC 6962 §2.1 (MTH), §2.1.1 (PATH) and §2.1.2 (PROOF / SUBPROOF), used only
// by the tests. It is deliberately recursive and shares no code with the
// package except LeafHash/NodeHash (themselves checked against shell-computed
// vectors). Subtree hashes are memoised so that every proof of every tree up
// to 1024 leaves stays cheap.

type refTree struct {
	leaves []Hash // leaf hashes, D[i] already hashed with LeafHash
	memo   map[[2]uint64]Hash
}

func newRefTree(leaves []Hash) *refTree {
	return &refTree{leaves: leaves, memo: make(map[[2]uint64]Hash)}
}

// k is the largest power of two smaller than n (n > 1).
func refSplit(n uint64) uint64 {
	k := uint64(1)
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// mth is MTH(D[a:b]).
func (t *refTree) mth(a, b uint64) Hash {
	switch n := b - a; n {
	case 0:
		return EmptyRoot()
	case 1:
		return t.leaves[a]
	default:
		key := [2]uint64{a, b}
		if h, ok := t.memo[key]; ok {
			return h
		}
		k := refSplit(n)
		h := NodeHash(t.mth(a, a+k), t.mth(a+k, b))
		t.memo[key] = h
		return h
	}
}

// path is PATH(m, D[a:b]) for the leaf a+m.
func (t *refTree) path(m, a, b uint64) []Hash {
	n := b - a
	if n == 1 {
		return nil
	}
	k := refSplit(n)
	if m < k {
		return append(t.path(m, a, a+k), t.mth(a+k, b))
	}
	return append(t.path(m-k, a+k, b), t.mth(a, a+k))
}

// inclusion is the audit path of leaf m in the tree of size n.
func (t *refTree) inclusion(m, n uint64) []Hash { return t.path(m, 0, n) }

// subproof is SUBPROOF(m, D[a:b], flag).
func (t *refTree) subproof(m, a, b uint64, flag bool) []Hash {
	n := b - a
	if m == n {
		if flag {
			return nil
		}
		return []Hash{t.mth(a, b)}
	}
	k := refSplit(n)
	if m <= k {
		return append(t.subproof(m, a, a+k, flag), t.mth(a+k, b))
	}
	return append(t.subproof(m-k, a+k, b, false), t.mth(a, a+k))
}

// consistency is PROOF(m, D[0:n]); empty for m == 0 or m == n.
func (t *refTree) consistency(m, n uint64) []Hash {
	if m == 0 || m == n {
		return nil
	}
	return t.subproof(m, 0, n, true)
}

// refVerifyInclusion is the reference verifier: a proof is good exactly when
// it is the reference audit path and root is the reference root.
func (t *refTree) verifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) bool {
	if size == 0 || index >= size || size > uint64(len(t.leaves)) {
		return false
	}
	return leaf == t.leaves[index] && root == t.mth(0, size) && hashesEqual(proof, t.inclusion(index, size))
}

// A consistency statement is true when (size2, root2) extends (size1, root1):
// from size 0 that holds for any root2 as long as root1 is the empty root, and
// between equal sizes for equal roots, in both cases with an empty proof.
func (t *refTree) verifyConsistency(size1, size2 uint64, proof []Hash, root1, root2 Hash) bool {
	switch {
	case size1 > size2:
		return false
	case size1 == 0:
		return len(proof) == 0 && root1 == EmptyRoot()
	case size1 == size2:
		return len(proof) == 0 && root1 == root2
	case size2 > uint64(len(t.leaves)):
		return false
	}
	return root1 == t.mth(0, size1) && root2 == t.mth(0, size2) && hashesEqual(proof, t.consistency(size1, size2))
}

func hashesEqual(a, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// nodeStore keeps every full node hash, as a ledger storing all nodes would,
// filled through Range.Append's visit callback.
type nodeStore struct {
	levels [][]Hash
}

func (s *nodeStore) visit(id NodeID, h Hash) {
	for int(id.Level) >= len(s.levels) {
		s.levels = append(s.levels, nil)
	}
	if uint64(len(s.levels[id.Level])) != id.Index {
		panic("nodeStore: nodes visited out of order")
	}
	s.levels[id.Level] = append(s.levels[id.Level], h)
}

func (s *nodeStore) get(id NodeID) Hash { return s.levels[id.Level][id.Index] }

func (s *nodeStore) fetch(ids []NodeID) []Hash {
	out := make([]Hash, len(ids))
	for i, id := range ids {
		out[i] = s.get(id)
	}
	return out
}

// buildStore appends leaves to a new Range, storing every visited node.
func buildStore(leaves []Hash) (*Range, *nodeStore) {
	r, s := NewRange(), &nodeStore{}
	for _, l := range leaves {
		r.Append(l, s.visit)
	}
	return r, s
}

// testLeaves returns n leaf hashes: the 8 RFC 6962 test leaves first, then
// LeafHash of the big-endian index.
func testLeaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		if i < len(rfcLeafData) {
			out[i] = LeafHash(mustHex(rfcLeafData[i]))
		} else {
			out[i] = LeafHash([]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}
	}
	return out
}
