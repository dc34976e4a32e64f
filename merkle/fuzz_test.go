package merkle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	tdproof "github.com/transparency-dev/merkle/proof"
)

// Fuzz targets. The seed corpus lives in testdata/fuzz/<FuzzName>/ and runs
// with every `go test`; regenerate it with
//
//	MERKLE_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./merkle/
//
// and fuzz with e.g. `go test -run='^$' -fuzz=FuzzVerifyInclusion -fuzztime=30s ./merkle/`.

const fuzzTreeSize = 64

// Flags steering the verifier fuzzers.
const (
	fuzzMutateRefProof = 1 << iota // XOR the proof bytes into the reference proof instead of using them
	fuzzOwnLeaf                    // use the fuzzed leaf instead of the tree's
	fuzzOwnRoot                    // use the fuzzed root(s) instead of the tree's
)

var fuzzTree = sync.OnceValue(func() *refTree {
	t := newRefTree(testLeaves(fuzzTreeSize))
	for n := uint64(0); n <= fuzzTreeSize; n++ {
		t.mth(0, n)
	}
	return t
})

var fuzzMu sync.Mutex // guards fuzzTree's memo

func hashFromFuzz(b []byte) Hash {
	var x Hash
	copy(x[:], b)
	return x
}

func hashesFromFuzz(b []byte) []Hash {
	if len(b) > 70*HashSize {
		b = b[:70*HashSize]
	}
	out := make([]Hash, 0, (len(b)+HashSize-1)/HashSize)
	for len(b) > 0 {
		n := min(len(b), HashSize)
		out = append(out, hashFromFuzz(b[:n]))
		b = b[n:]
	}
	return out
}

// mutate XORs the bytes of b into a copy of proof; extra bytes append hashes.
func mutate(proof []Hash, b []byte) []Hash {
	out := append([]Hash(nil), proof...)
	for i, c := range b {
		if i/HashSize >= len(out) {
			if len(out) >= 70 {
				break
			}
			out = append(out, Hash{})
		}
		out[i/HashSize][i%HashSize] ^= c
	}
	return out
}

func FuzzVerifyInclusion(f *testing.F) {
	f.Add(uint64(0), uint64(8), []byte{}, []byte{}, []byte{}, uint64(fuzzMutateRefProof))
	f.Add(uint64(5), uint64(7), []byte{}, []byte{1}, []byte{}, uint64(fuzzMutateRefProof))
	f.Add(uint64(1)<<40, uint64(1)<<41, []byte("leaf"), bytes.Repeat([]byte{7}, 41*HashSize), []byte("root"), uint64(0))
	f.Fuzz(func(t *testing.T, index, size uint64, leafB, proofB, rootB []byte, flags uint64) {
		leaf, root, proof := hashFromFuzz(leafB), hashFromFuzz(rootB), hashesFromFuzz(proofB)

		// Arbitrary input: never panic, errors are typed, and the computed
		// root agrees with transparency-dev's verifier.
		got, err := RootFromInclusionProof(leaf, index, size, proof)
		td, tdErr := tdproof.RootFromInclusionProof(tdHasher, index, size, leaf[:], toBytes(proof))
		if (err == nil) != (tdErr == nil) || (err == nil && !bytes.Equal(got[:], td)) {
			t.Fatalf("RootFromInclusionProof = %s, %v; transparency-dev %x, %v", got, err, td, tdErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("untyped error %v", err)
		}
		err = VerifyInclusion(leaf, index, size, proof, root)
		if err != nil && !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrRootMismatch) {
			t.Fatalf("untyped error %v", err)
		}

		// Against the real 64-leaf tree: accept exactly what the reference
		// accepts (sound and complete).
		if size == 0 || size > fuzzTreeSize || index >= size {
			return
		}
		ref := fuzzTree()
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		if flags&fuzzMutateRefProof != 0 {
			proof = mutate(ref.inclusion(index, size), proofB)
		}
		if flags&fuzzOwnLeaf == 0 {
			leaf = ref.leaves[index]
		}
		if flags&fuzzOwnRoot == 0 {
			root = ref.mth(0, size)
		}
		accepted := VerifyInclusion(leaf, index, size, proof, root) == nil
		want := ref.verifyInclusion(leaf, index, size, proof, root)
		// With the true root of the claimed size the verdict must be the
		// reference's. With another root (say the root of a size that gives
		// the proof the same shape, see TestSizeBoundByShapeOnly) the verifier
		// only checks hashing, which the transparency-dev comparison covers.
		if root == ref.mth(0, size) && accepted != want {
			t.Fatalf("inclusion %d/%d: accepted=%v, reference says %v (leaf %s, proof %v)", index, size, accepted, want, leaf, proof)
		}
	})
}

func FuzzVerifyConsistency(f *testing.F) {
	f.Add(uint64(3), uint64(7), []byte{}, []byte{}, []byte{}, uint64(fuzzMutateRefProof))
	f.Add(uint64(4), uint64(8), []byte{0, 1}, []byte{}, []byte{}, uint64(fuzzMutateRefProof))
	f.Add(uint64(0), uint64(8), []byte{}, []byte("r1"), []byte("r2"), uint64(fuzzOwnRoot))
	f.Add(uint64(1)<<40-3, uint64(1)<<41+5, bytes.Repeat([]byte{9}, 43*HashSize), []byte("r1"), []byte("r2"), uint64(0))
	f.Fuzz(func(t *testing.T, size1, size2 uint64, proofB, root1B, root2B []byte, flags uint64) {
		root1, root2, proof := hashFromFuzz(root1B), hashFromFuzz(root2B), hashesFromFuzz(proofB)

		// Arbitrary input: never panic, typed errors, and the same verdict
		// as transparency-dev except that we also insist that the root of
		// size 0 is the empty root.
		err := VerifyConsistency(size1, size2, proof, root1, root2)
		if err != nil && !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrRootMismatch) {
			t.Fatalf("untyped error %v", err)
		}
		tdErr := tdproof.VerifyConsistency(tdHasher, size1, size2, toBytes(proof), root1[:], root2[:])
		stricter := size1 == 0 && size2 > 0 && root1 != EmptyRoot()
		if (err == nil) != (tdErr == nil) && !(stricter && err != nil) {
			t.Fatalf("VerifyConsistency(%d, %d) = %v; transparency-dev %v", size1, size2, err, tdErr)
		}
		if r2, err := RootFromConsistencyProof(size1, size2, proof, root1); err == nil && size1 > 0 {
			if (VerifyConsistency(size1, size2, proof, root1, r2) != nil) && size1 != size2 {
				t.Fatalf("RootFromConsistencyProof gave a root VerifyConsistency rejects")
			}
		}

		// Against the real 64-leaf tree: accept exactly what the reference
		// accepts.
		if size1 > size2 || size2 > fuzzTreeSize {
			return
		}
		ref := fuzzTree()
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		if flags&fuzzMutateRefProof != 0 {
			proof = mutate(ref.consistency(size1, size2), proofB)
		}
		if flags&fuzzOwnRoot == 0 {
			root1, root2 = ref.mth(0, size1), ref.mth(0, size2)
		}
		accepted := VerifyConsistency(size1, size2, proof, root1, root2) == nil
		want := ref.verifyConsistency(size1, size2, proof, root1, root2)
		// As for inclusion: with the true roots of the claimed sizes the
		// verdict must be the reference's (from size 0 only root1 matters).
		trueRoots := root1 == ref.mth(0, size1) && (size1 == 0 || root2 == ref.mth(0, size2))
		if trueRoots && accepted != want {
			t.Fatalf("consistency %d/%d: accepted=%v, reference says %v (proof %v)", size1, size2, accepted, want, proof)
		}
	})
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/0/x001/234.p/7", "tile/63/x018/x446/x744/x073/x709/x551/615", "tile/entries/000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id, err := ParseTilePath(path)
		if err != nil {
			return
		}
		if id.Level > maxTilePathLevel || id.Width < 1 || id.Width > TileWidth {
			t.Fatalf("ParseTilePath(%q) = %+v out of range", path, id)
		}
		if got := id.Path(); got != path {
			t.Fatalf("ParseTilePath(%q) = %+v, which prints as %q", path, id, got)
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus. It only runs
// when MERKLE_WRITE_FUZZ_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MERKLE_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MERKLE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(fuzzName, name string, vals ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range vals {
			switch v := v.(type) {
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			default:
				t.Fatalf("unsupported %T", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", fuzzName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cat := func(hs []Hash) []byte {
		var out []byte
		for _, x := range hs {
			out = append(out, x[:]...)
		}
		return out
	}
	ref := newRefTree(testLeaves(fuzzTreeSize))
	none := []byte{}

	// Inclusion: every published / derived vector as a literal valid proof,
	// near misses, and shape edge cases.
	for _, v := range rfcInclusion {
		p, l, r := cat(hs(v.proof)), ref.leaves[v.index], ref.mth(0, v.size)
		write("FuzzVerifyInclusion", fmt.Sprintf("valid-%d-%d", v.index, v.size), v.index, v.size, l[:], p, r[:], uint64(fuzzOwnLeaf|fuzzOwnRoot))
		if len(p) > 0 {
			bad := append([]byte(nil), p...)
			bad[len(bad)-1] ^= 1
			write("FuzzVerifyInclusion", fmt.Sprintf("flipped-%d-%d", v.index, v.size), v.index, v.size, l[:], bad, r[:], uint64(fuzzOwnLeaf|fuzzOwnRoot))
			write("FuzzVerifyInclusion", fmt.Sprintf("dropped-%d-%d", v.index, v.size), v.index, v.size, l[:], p[HashSize:], r[:], uint64(fuzzOwnLeaf|fuzzOwnRoot))
		}
	}
	for _, c := range [][2]uint64{{0, 64}, {63, 64}, {31, 33}, {32, 33}, {17, 45}, {44, 45}} {
		write("FuzzVerifyInclusion", fmt.Sprintf("ref-%d-%d", c[0], c[1]), c[0], c[1], none, none, none, uint64(fuzzMutateRefProof))
		write("FuzzVerifyInclusion", fmt.Sprintf("ref-extra-%d-%d", c[0], c[1]), c[0], c[1], none, make([]byte, 40*HashSize), none, uint64(fuzzMutateRefProof))
	}
	write("FuzzVerifyInclusion", "index-eq-size", uint64(8), uint64(8), none, none, none, uint64(0))
	write("FuzzVerifyInclusion", "size-zero", uint64(0), uint64(0), none, none, none, uint64(0))
	write("FuzzVerifyInclusion", "max-size", uint64(1<<64-2), uint64(1<<64-1), none, make([]byte, 64*HashSize), none, uint64(0))
	write("FuzzVerifyInclusion", "short-hash-bytes", uint64(3), uint64(8), []byte{1}, []byte{1, 2, 3}, []byte{4}, uint64(0))

	// Consistency.
	for _, v := range rfcConsistency {
		p, r1, r2 := cat(hs(v.proof)), ref.mth(0, v.size1), ref.mth(0, v.size2)
		write("FuzzVerifyConsistency", fmt.Sprintf("valid-%d-%d", v.size1, v.size2), v.size1, v.size2, p, r1[:], r2[:], uint64(fuzzOwnRoot))
		if len(p) > 0 {
			bad := append([]byte(nil), p...)
			bad[0] ^= 0x80
			write("FuzzVerifyConsistency", fmt.Sprintf("flipped-%d-%d", v.size1, v.size2), v.size1, v.size2, bad, r1[:], r2[:], uint64(fuzzOwnRoot))
			write("FuzzVerifyConsistency", fmt.Sprintf("appended-%d-%d", v.size1, v.size2), v.size1, v.size2, append(p, r2[:]...), r1[:], r2[:], uint64(fuzzOwnRoot))
		}
	}
	for _, c := range [][2]uint64{{1, 64}, {32, 64}, {63, 64}, {31, 33}, {33, 64}, {17, 45}, {45, 45}, {0, 45}} {
		write("FuzzVerifyConsistency", fmt.Sprintf("ref-%d-%d", c[0], c[1]), c[0], c[1], none, none, none, uint64(fuzzMutateRefProof))
	}
	e := EmptyRoot()
	write("FuzzVerifyConsistency", "size1-gt-size2", uint64(9), uint64(8), none, none, none, uint64(0))
	write("FuzzVerifyConsistency", "zero-nonempty", uint64(0), uint64(8), make([]byte, HashSize), e[:], none, uint64(fuzzOwnRoot))
	write("FuzzVerifyConsistency", "zero-wrong-root1", uint64(0), uint64(8), none, []byte("not empty"), none, uint64(fuzzOwnRoot))
	write("FuzzVerifyConsistency", "equal-nonempty", uint64(8), uint64(8), make([]byte, HashSize), none, none, uint64(0))
	write("FuzzVerifyConsistency", "max-size", uint64(1<<63+1), uint64(1<<64-1), make([]byte, 66*HashSize), none, none, uint64(0))

	// Tile paths, valid and not.
	for i, p := range []string{
		"tile/0/000", "tile/0/x001/234", "tile/0/x001/234.p/7", "tile/3/x123/x456/789.p/255",
		"tile/63/x018/x446/x744/x073/x709/x551/615", "tile/0/x018/x446/x744/x073/x709/x551/616",
		"tile/00/000", "tile/0/x000/001", "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/01",
		"tile/entries/x001/234", "tile/64/000", "tile/0/001/234", "tile/0/x001",
	} {
		write("FuzzParseTilePath", fmt.Sprintf("seed-%02d", i), p)
	}
}
