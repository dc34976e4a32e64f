package merkle

import (
	"errors"
	"fmt"
	"math/bits"
)

// Errors returned (wrapped) by the verifiers. Test with errors.Is.
var (
	// ErrInvalidProof: the arguments or the proof's shape are impossible,
	// e.g. index >= size, size1 > size2, or a proof of the wrong length.
	ErrInvalidProof = errors.New("merkle: invalid proof")
	// ErrRootMismatch: the proof is well formed but yields a different root.
	ErrRootMismatch = errors.New("merkle: root mismatch")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProof}, args...)...)
}

// inclusionProofLen returns the length of the inclusion proof for index in a
// tree of size leaves (index < size): one hash per level below the point
// where the paths to index and to size-1 diverge ("inner"), plus one per
// left sibling above it ("border").
func inclusionProofLen(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	return inner + bits.OnesCount64(index>>inner)
}

// RootFromInclusionProof computes the root of the tree of size leaves implied
// by an inclusion proof for leafHash at index (RFC 9162 §2.1.3.2). It returns
// an error wrapping ErrInvalidProof if index >= size or the proof does not
// have exactly the length the RFC 6962 tree shape requires.
func RootFromInclusionProof(leafHash Hash, index, size uint64, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, invalidf("leaf index %d out of range for tree size %d", index, size)
	}
	if want := inclusionProofLen(index, size); len(proof) != want {
		return Hash{}, invalidf("inclusion proof for index %d in size %d has %d hashes, want %d", index, size, len(proof), want)
	}
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return Hash{}, invalidf("inclusion proof too long")
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn != 0 && fn&1 == 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, invalidf("inclusion proof too short")
	}
	return r, nil
}

// VerifyInclusion checks that proof shows leafHash at index in the tree of
// size leaves whose root is root. A nil result means the proof is valid.
func VerifyInclusion(leafHash Hash, index, size uint64, proof []Hash, root Hash) error {
	got, err := RootFromInclusionProof(leafHash, index, size, proof)
	if err != nil {
		return err
	}
	if got != root {
		return fmt.Errorf("%w: inclusion proof gives root %s, want %s", ErrRootMismatch, got, root)
	}
	return nil
}

// consistencyProofLen returns the length of the consistency proof between
// sizes 0 < size1 < size2.
func consistencyProofLen(size1, size2 uint64) int {
	level := uint(bits.TrailingZeros64(size1))
	index := (size1 - 1) >> level
	n := inclusionProofLen(index, (size2-1)>>level+1)
	if index != 0 {
		n++ // the seed node, omitted when size1 is a power of two
	}
	return n
}

// consistencyRoots runs RFC 9162 §2.1.4.2 for 0 < size1 < size2 and returns
// the old and new roots the proof implies.
func consistencyRoots(size1, size2 uint64, proof []Hash, root1 Hash) (fr, sr Hash, err error) {
	if want := consistencyProofLen(size1, size2); len(proof) != want {
		return fr, sr, invalidf("consistency proof from size %d to %d has %d hashes, want %d", size1, size2, len(proof), want)
	}
	// When size1 is a power of two the proof omits the old root: prepend it.
	path := proof
	var seed Hash
	if size1&(size1-1) == 0 {
		seed = root1
	} else {
		seed, path = proof[0], proof[1:]
	}
	fn, sn := size1-1, size2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr = seed, seed
	for _, c := range path {
		if sn == 0 {
			return Hash{}, Hash{}, invalidf("consistency proof too long")
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn != 0 && fn&1 == 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, Hash{}, invalidf("consistency proof too short")
	}
	return fr, sr, nil
}

// RootFromConsistencyProof returns the root of the tree of size2 leaves
// implied by a consistency proof from the tree of size1 leaves with root
// root1, after checking that the proof reproduces root1 (ErrRootMismatch if
// not). It requires 0 < size1 <= size2 (ErrInvalidProof otherwise): from size
// 0 a proof says nothing about the new root.
func RootFromConsistencyProof(size1, size2 uint64, proof []Hash, root1 Hash) (Hash, error) {
	switch {
	case size1 > size2:
		return Hash{}, invalidf("size1 %d > size2 %d", size1, size2)
	case size1 == 0:
		return Hash{}, invalidf("no root can be derived from a consistency proof from size 0")
	case size1 == size2:
		if len(proof) != 0 {
			return Hash{}, invalidf("consistency proof between equal sizes must be empty, got %d hashes", len(proof))
		}
		return root1, nil
	}
	fr, sr, err := consistencyRoots(size1, size2, proof, root1)
	if err != nil {
		return Hash{}, err
	}
	if fr != root1 {
		return Hash{}, fmt.Errorf("%w: consistency proof gives old root %s, want %s", ErrRootMismatch, fr, root1)
	}
	return sr, nil
}

// VerifyConsistency checks that proof shows the tree of size2 leaves with
// root root2 extends the tree of size1 leaves with root root1 (RFC 9162
// §2.1.4.2). A nil result means the proof is valid.
//
// Edge cases: size1 == size2 needs an empty proof and root1 == root2;
// size1 == 0 needs an empty proof and root1 == EmptyRoot() (any root2 is
// then consistent); size1 > size2 is always rejected.
func VerifyConsistency(size1, size2 uint64, proof []Hash, root1, root2 Hash) error {
	switch {
	case size1 > size2:
		return invalidf("size1 %d > size2 %d", size1, size2)
	case size1 == 0:
		if len(proof) != 0 {
			return invalidf("consistency proof from size 0 must be empty, got %d hashes", len(proof))
		}
		if root1 != emptyRoot {
			return fmt.Errorf("%w: root of size 0 is %s, want the empty root %s", ErrRootMismatch, root1, emptyRoot)
		}
		return nil
	case size1 == size2:
		if len(proof) != 0 {
			return invalidf("consistency proof between equal sizes must be empty, got %d hashes", len(proof))
		}
		if root1 != root2 {
			return fmt.Errorf("%w: equal sizes %d with different roots %s and %s", ErrRootMismatch, size1, root1, root2)
		}
		return nil
	}
	fr, sr, err := consistencyRoots(size1, size2, proof, root1)
	if err != nil {
		return err
	}
	if fr != root1 {
		return fmt.Errorf("%w: consistency proof gives old root %s, want %s", ErrRootMismatch, fr, root1)
	}
	if sr != root2 {
		return fmt.Errorf("%w: consistency proof gives new root %s, want %s", ErrRootMismatch, sr, root2)
	}
	return nil
}
