package merkle

import (
	"errors"
	"math"
	"testing"
)

// Negative vectors: every positive proof is also checked in corrupted forms.
// The oracle for each probe is the reference verifier (a probe is good
// exactly when its proof is the reference proof for the claimed sizes and
// its roots are the reference roots), so a probe that happens to be a true
// statement (e.g. the empty proof from size 0 to any size) is expected to
// pass and everything else to fail.

func flipBit(x Hash, bit int) Hash {
	x[bit/8%HashSize] ^= 1 << (bit % 8)
	return x
}

// bitsToFlip returns every bit position for short proofs, a spread otherwise.
func bitsToFlip(proofLen int) []int {
	if proofLen <= 4 {
		all := make([]int, 8*HashSize)
		for i := range all {
			all[i] = i
		}
		return all
	}
	return []int{0, 7, 8, 100, 128, 255}
}

func proofVariants(proof []Hash, extra ...Hash) (out [][]Hash) {
	for i := range proof {
		for _, b := range bitsToFlip(len(proof)) {
			p := append([]Hash(nil), proof...)
			p[i] = flipBit(p[i], b)
			out = append(out, p)
		}
		dropped := append(append([]Hash(nil), proof[:i]...), proof[i+1:]...)
		out = append(out, dropped)
		if i+1 < len(proof) { // swap neighbours
			p := append([]Hash(nil), proof...)
			p[i], p[i+1] = p[i+1], p[i]
			out = append(out, p)
		}
	}
	for _, x := range append(extra, Hash{}) {
		out = append(out, append(append([]Hash(nil), proof...), x))
		out = append(out, append([]Hash{x}, proof...))
	}
	if len(proof) > 0 {
		out = append(out, append(append([]Hash(nil), proof...), proof[len(proof)-1]))
	}
	return out
}

func wantReject(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Errorf("accepted: %s", what)
	} else if !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrRootMismatch) {
		t.Errorf("%s: untyped error %v", what, err)
	}
}

// checkInclusion asserts VerifyInclusion agrees with the reference verifier.
func checkInclusion(t *testing.T, ref *refTree, leaf Hash, index, size uint64, proof []Hash, root Hash, what string) {
	t.Helper()
	err := VerifyInclusion(leaf, index, size, proof, root)
	if ref.verifyInclusion(leaf, index, size, proof, root) {
		if err != nil {
			t.Errorf("%s: rejected a true statement: %v", what, err)
		}
		return
	}
	wantReject(t, err, what)
	if r, err := RootFromInclusionProof(leaf, index, size, proof); err == nil && r == root {
		t.Errorf("%s: RootFromInclusionProof reproduced the root", what)
	}
}

func checkInclusionNegatives(t *testing.T, ref *refTree, index, size uint64, proof []Hash) {
	t.Helper()
	n := uint64(len(ref.leaves))
	leaf, root := ref.leaves[index], ref.mth(0, size)
	for _, p := range proofVariants(proof, root, leaf) {
		checkInclusion(t, ref, leaf, index, size, p, root, "corrupted proof")
	}
	// Wrong index: every other leaf position, with the real leaf and with
	// the leaf that is really there.
	for _, j := range []uint64{size, size + 1, math.MaxUint64, index ^ 1, index ^ 2} {
		checkInclusion(t, ref, leaf, j, size, proof, root, "wrong index")
	}
	for j := uint64(0); j < size; j++ {
		if j != index {
			checkInclusion(t, ref, leaf, j, size, proof, root, "wrong index")
			checkInclusion(t, ref, ref.leaves[j], j, size, proof, root, "wrong index and its leaf")
		}
	}
	// Wrong size, with the real root of that size, and absurd sizes.
	for s := uint64(0); s <= n; s++ {
		if s != size {
			checkInclusion(t, ref, leaf, index, s, proof, ref.mth(0, s), "wrong size")
		}
	}
	// With the root unchanged, only sizes that change the proof's shape can
	// be caught (see TestSizeBoundByShapeOnly).
	for _, s := range []uint64{0, index, 2 * size, size / 2, math.MaxUint64} {
		if s != size {
			checkInclusion(t, ref, leaf, index, s, proof, root, "wrong size, same root")
		}
	}
	// Wrong leaf, wrong root.
	for _, b := range []int{0, 9, 255} {
		checkInclusion(t, ref, flipBit(leaf, b), index, size, proof, root, "wrong leaf")
		checkInclusion(t, ref, leaf, index, size, proof, flipBit(root, b), "wrong root")
	}
	checkInclusion(t, ref, root, index, size, proof, root, "root as leaf")
	checkInclusion(t, ref, leaf, index, size, proof, EmptyRoot(), "empty root")
	if size > 1 {
		checkInclusion(t, ref, leaf, index, size, proof, ref.mth(0, size-1), "previous root")
	}
}

func checkConsistency(t *testing.T, ref *refTree, size1, size2 uint64, proof []Hash, root1, root2 Hash, what string) {
	t.Helper()
	err := VerifyConsistency(size1, size2, proof, root1, root2)
	if ref.verifyConsistency(size1, size2, proof, root1, root2) {
		if err != nil {
			t.Errorf("%s (%d,%d): rejected a true statement: %v", what, size1, size2, err)
		}
		return
	}
	wantReject(t, err, what)
}

func checkConsistencyNegatives(t *testing.T, ref *refTree, size1, size2 uint64, proof []Hash) {
	t.Helper()
	n := uint64(len(ref.leaves))
	root1, root2 := ref.mth(0, size1), ref.mth(0, size2)
	for _, p := range proofVariants(proof, root1, root2) {
		checkConsistency(t, ref, size1, size2, p, root1, root2, "corrupted proof")
	}
	checkConsistency(t, ref, size1, size2, nil, root1, root2, "empty proof")
	// Wrong sizes, with the real roots of those sizes.
	for s := uint64(0); s <= n; s++ {
		if s != size1 {
			checkConsistency(t, ref, s, size2, proof, ref.mth(0, s), root2, "wrong size1")
		}
		if s != size2 {
			checkConsistency(t, ref, size1, s, proof, root1, ref.mth(0, s), "wrong size2")
		}
	}
	// With the roots unchanged, only sizes that change the proof's shape can
	// be caught (see TestSizeBoundByShapeOnly).
	for _, s := range []uint64{2 * size1, size1 / 2, size2 + 1, math.MaxUint64} {
		checkConsistency(t, ref, s, size2, proof, root1, root2, "wrong size1, same roots")
	}
	for _, s := range []uint64{2 * size2, size2 / 2, math.MaxUint64} {
		checkConsistency(t, ref, size1, s, proof, root1, root2, "wrong size2, same roots")
	}
	checkConsistency(t, ref, size2, size1, proof, root2, root1, "swapped sizes and roots")
	for _, b := range []int{0, 9, 255} {
		checkConsistency(t, ref, size1, size2, proof, flipBit(root1, b), root2, "wrong root1")
		checkConsistency(t, ref, size1, size2, proof, root1, flipBit(root2, b), "wrong root2")
	}
	checkConsistency(t, ref, size1, size2, proof, root2, root1, "swapped roots")
	checkConsistency(t, ref, size1, size2, proof, root1, root1, "root1 twice")
	checkConsistency(t, ref, size1, size2, proof, root2, root2, "root2 twice")
}

// The argument errors the issue lists, each on its own.
func TestVerifyArgumentErrors(t *testing.T) {
	leaves := testLeaves(8)
	ref := newRefTree(leaves)
	root8 := ref.mth(0, 8)
	incl := ref.inclusion(3, 8)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"index == size", VerifyInclusion(leaves[0], 8, 8, incl, root8), ErrInvalidProof},
		{"index > size", VerifyInclusion(leaves[0], 9, 8, incl, root8), ErrInvalidProof},
		{"size 0", VerifyInclusion(leaves[0], 0, 0, nil, EmptyRoot()), ErrInvalidProof},
		{"proof too short", VerifyInclusion(leaves[3], 3, 8, incl[:2], root8), ErrInvalidProof},
		{"proof too long", VerifyInclusion(leaves[3], 3, 8, append(incl, root8), root8), ErrInvalidProof},
		{"wrong root", VerifyInclusion(leaves[3], 3, 8, incl, ref.mth(0, 7)), ErrRootMismatch},
		{"size1 > size2", VerifyConsistency(5, 4, nil, ref.mth(0, 5), ref.mth(0, 4)), ErrInvalidProof},
		{"size1 == size2, non-empty proof", VerifyConsistency(4, 4, []Hash{root8}, ref.mth(0, 4), ref.mth(0, 4)), ErrInvalidProof},
		{"size1 == size2, different roots", VerifyConsistency(4, 4, nil, ref.mth(0, 4), root8), ErrRootMismatch},
		{"size1 == 0, non-empty proof", VerifyConsistency(0, 8, []Hash{root8}, EmptyRoot(), root8), ErrInvalidProof},
		{"size1 == 0, not the empty root", VerifyConsistency(0, 8, nil, root8, root8), ErrRootMismatch},
		{"empty proof", VerifyConsistency(3, 8, nil, ref.mth(0, 3), root8), ErrInvalidProof},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	if err := VerifyConsistency(0, 8, nil, EmptyRoot(), root8); err != nil {
		t.Errorf("size1 == 0 with empty proof and empty root: %v", err)
	}
	if err := VerifyConsistency(8, 8, nil, root8, root8); err != nil {
		t.Errorf("size1 == size2 with empty proof: %v", err)
	}
	if _, err := RootFromConsistencyProof(0, 8, nil, EmptyRoot()); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("RootFromConsistencyProof from size 0: %v", err)
	}
	if _, err := InclusionNodes(8, 8); err == nil {
		t.Error("InclusionNodes(8, 8) succeeded")
	}
	if _, err := ConsistencyNodes(9, 8); err == nil {
		t.Error("ConsistencyNodes(9, 8) succeeded")
	}
	if _, err := (Nodes{IDs: make([]NodeID, 3)}).Rehash(make([]Hash, 2)); err == nil {
		t.Error("Rehash with too few hashes succeeded")
	}
}

// RFC 6962 proofs do not carry the tree size: it only decides the proof's
// shape (its length and which side each hash goes on). A size with the same
// shape therefore computes the same root, so a verifier must always take the
// size and the root from the same signed checkpoint. This test pins that
// property down so that nobody mistakes it for a bug: with the root that
// really belongs to the size the proof was made for, the neighbouring size
// passes, while with that size's own root (the checkpoint case, covered in
// checkInclusionNegatives) it fails.
func TestSizeBoundByShapeOnly(t *testing.T) {
	ref := newRefTree(testLeaves(8))
	incl := ref.inclusion(0, 5) // [leaf1, node(1,1), leaf4]
	if err := VerifyInclusion(ref.leaves[0], 0, 6, incl, ref.mth(0, 5)); err != nil {
		t.Errorf("same-shape size with the original root: %v", err)
	}
	if err := VerifyInclusion(ref.leaves[0], 0, 6, incl, ref.mth(0, 6)); err == nil {
		t.Error("proof for size 5 accepted against the root of size 6")
	}
	cons := ref.consistency(3, 7)
	if err := VerifyConsistency(3, 6, cons, ref.mth(0, 3), ref.mth(0, 7)); err != nil {
		t.Errorf("same-shape size2 with the original roots: %v", err)
	}
	if err := VerifyConsistency(3, 6, cons, ref.mth(0, 3), ref.mth(0, 6)); err == nil {
		t.Error("proof for 3->7 accepted against the root of size 6")
	}
}
