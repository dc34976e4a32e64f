package merkle

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// The classic 8-leaf RFC 6962 / Certificate Transparency reference tree.
//
// Sources: the leaf inputs, node hashes, roots and the proofs marked
// "published" come from Certificate Transparency's merkle_tree_test (C++),
// as carried by github.com/transparency-dev/merkle v0.0.2 in
// testonly/constants.go and proof/verify_test.go (which number leaves from 1
// there; the indices below are 0-based). Every hash was recomputed
// independently with xxd and sha256sum by testdata/rfc6962_vectors.sh, e.g.
//
//	printf '\000' | cat - <(echo -n 00 | xxd -r -p) | sha256sum   # leaf 1
//
// Proofs marked "derived" were worked out by hand from RFC 6962 §2.1.1 PATH
// and §2.1.2 SUBPROOF over the node table below, and recombined into the
// root of their size by the same script.
var rfcLeafData = []string{
	"", "00", "10", "2021", "3031", "40414243",
	"5051525354555657", "606162636465666768696a6b6c6d6e6f",
}

// rfcNodes[level][index]: every full node of the 8-leaf tree.
var rfcNodes = [][]string{{
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
	"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
}, {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
}, {
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
}, {
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}}

// rfcRoots[n] is the root of the tree of the first n leaves (published).
var rfcRoots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // SHA-256("")
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

type inclusionVector struct {
	index, size uint64
	proof       []string
	ids         []NodeID // the stored nodes InclusionNodes must ask for
	source      string
}

var rfcInclusion = []inclusionVector{
	{0, 1, nil, nil, "published"},
	{0, 8, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}, []NodeID{{0, 1}, {1, 1}, {2, 1}}, "published"},
	{5, 8, []string{
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{0, 4}, {1, 3}, {2, 0}}, "published"},
	{2, 3, []string{
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	}, []NodeID{{1, 0}}, "published"},
	{1, 5, []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	}, []NodeID{{0, 0}, {1, 1}, {0, 4}}, "published"},
	{7, 8, []string{
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{0, 6}, {1, 2}, {2, 0}}, "derived"},
	// The ephemeral node (1,3) of size 7 is rebuilt from leaf 6 alone.
	{4, 7, []string{
		"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{0, 5}, {0, 6}, {2, 0}}, "derived"},
	{6, 7, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{1, 2}, {2, 0}}, "derived"},
}

type consistencyVector struct {
	size1, size2 uint64
	proof        []string
	ids          []NodeID
	source       string
}

var rfcConsistency = []consistencyVector{
	{1, 1, nil, []NodeID{}, "published"},
	{1, 8, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}, []NodeID{{0, 1}, {1, 1}, {2, 1}}, "published"},
	{6, 8, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{1, 2}, {1, 3}, {2, 0}}, "published"},
	{2, 5, []string{
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	}, []NodeID{{1, 1}, {0, 4}}, "published"},
	// The second hash is the ephemeral node (1,3) of size 7, i.e. leaf 6.
	{6, 7, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{1, 2}, {0, 6}, {2, 0}}, "published"},
	// The last hash is the ephemeral node (2,1) of size 7, MTH(D[4:7]),
	// rebuilt from (1,2) and (0,6).
	{3, 7, []string{
		"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
		"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
	}, []NodeID{{0, 2}, {0, 3}, {1, 0}, {1, 2}, {0, 6}}, "derived"},
	{4, 8, []string{
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}, []NodeID{{2, 1}}, "derived"},
	{5, 8, []string{
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{0, 4}, {0, 5}, {1, 3}, {2, 0}}, "derived"},
	{1, 2, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	}, []NodeID{{0, 1}}, "derived"},
	{7, 8, []string{
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}, []NodeID{{0, 6}, {0, 7}, {1, 2}, {2, 0}}, "derived"},
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func h(s string) Hash {
	x, err := HashFromBytes(mustHex(s))
	if err != nil {
		panic(err)
	}
	return x
}

func hs(ss []string) []Hash {
	out := make([]Hash, len(ss))
	for i, s := range ss {
		out[i] = h(s)
	}
	return out
}

func rfcTree() (leaves []Hash, s *nodeStore) {
	leaves = testLeaves(8)
	_, s = buildStore(leaves)
	return leaves, s
}

func TestRFCHashes(t *testing.T) {
	if got, want := EmptyRoot(), h(rfcRoots[0]); got != want {
		t.Errorf("EmptyRoot() = %s, want %s", got, want)
	}
	for i, d := range rfcLeafData {
		if got, want := LeafHash(mustHex(d)), h(rfcNodes[0][i]); got != want {
			t.Errorf("LeafHash(%q) = %s, want %s", d, got, want)
		}
	}
	for l := 1; l < len(rfcNodes); l++ {
		for i := range rfcNodes[l] {
			got := NodeHash(h(rfcNodes[l-1][2*i]), h(rfcNodes[l-1][2*i+1]))
			if want := h(rfcNodes[l][i]); got != want {
				t.Errorf("node (%d,%d) = %s, want %s", l, i, got, want)
			}
		}
	}
}

func TestRFCRootsAndRange(t *testing.T) {
	leaves, store := rfcTree()
	// Every node Append visits is the published node hash.
	for l := range rfcNodes {
		for i := range rfcNodes[l] {
			if got, want := store.get(NodeID{uint8(l), uint64(i)}), h(rfcNodes[l][i]); got != want {
				t.Errorf("visited node (%d,%d) = %s, want %s", l, i, got, want)
			}
		}
	}
	r := NewRange()
	for n := 0; n <= 8; n++ {
		want := h(rfcRoots[n])
		if got := r.Root(); got != want {
			t.Errorf("size %d: Root() = %s, want %s", n, got, want)
		}
		hashes := r.Hashes()
		ids := RangeNodes(uint64(n))
		if len(ids) != len(hashes) {
			t.Fatalf("size %d: %d range IDs, %d hashes", n, len(ids), len(hashes))
		}
		for i, id := range ids {
			if hashes[i] != store.get(id) {
				t.Errorf("size %d: Hashes()[%d] is not node %v", n, i, id)
			}
		}
		if got, err := RootFromNodes(uint64(n), store.fetch(ids)); err != nil || got != want {
			t.Errorf("size %d: RootFromNodes = %s, %v; want %s", n, got, err, want)
		}
		rr, err := RestoreRange(r.Size(), hashes)
		if err != nil || rr.Root() != want || rr.Size() != uint64(n) {
			t.Errorf("size %d: RestoreRange: %v", n, err)
		}
		if n < 8 {
			r.Append(leaves[n], nil)
		}
	}
}

func TestRFCInclusionVectors(t *testing.T) {
	leaves, store := rfcTree()
	for _, v := range rfcInclusion {
		t.Run(fmt.Sprintf("%d/%d-%s", v.index, v.size, v.source), func(t *testing.T) {
			want := hs(v.proof)
			nodes, err := InclusionNodes(v.index, v.size)
			if err != nil {
				t.Fatal(err)
			}
			if !idsEqual(nodes.IDs, v.ids) {
				t.Errorf("InclusionNodes IDs = %v, want %v", nodes.IDs, v.ids)
			}
			got, err := nodes.Rehash(store.fetch(nodes.IDs))
			if err != nil || !hashesEqual(got, want) {
				t.Fatalf("proof = %v, %v; want %v", got, err, want)
			}
			root := h(rfcRoots[v.size])
			leaf := leaves[v.index]
			if err := VerifyInclusion(leaf, v.index, v.size, want, root); err != nil {
				t.Fatalf("VerifyInclusion: %v", err)
			}
			if r, err := RootFromInclusionProof(leaf, v.index, v.size, want); err != nil || r != root {
				t.Fatalf("RootFromInclusionProof = %s, %v", r, err)
			}
			checkInclusionNegatives(t, newRefTree(leaves), v.index, v.size, want)
		})
	}
}

func TestRFCConsistencyVectors(t *testing.T) {
	leaves, store := rfcTree()
	for _, v := range rfcConsistency {
		t.Run(fmt.Sprintf("%d/%d-%s", v.size1, v.size2, v.source), func(t *testing.T) {
			want := hs(v.proof)
			nodes, err := ConsistencyNodes(v.size1, v.size2)
			if err != nil {
				t.Fatal(err)
			}
			if !idsEqual(nodes.IDs, v.ids) {
				t.Errorf("ConsistencyNodes IDs = %v, want %v", nodes.IDs, v.ids)
			}
			got, err := nodes.Rehash(store.fetch(nodes.IDs))
			if err != nil || !hashesEqual(got, want) {
				t.Fatalf("proof = %v, %v; want %v", got, err, want)
			}
			root1, root2 := h(rfcRoots[v.size1]), h(rfcRoots[v.size2])
			if err := VerifyConsistency(v.size1, v.size2, want, root1, root2); err != nil {
				t.Fatalf("VerifyConsistency: %v", err)
			}
			if r, err := RootFromConsistencyProof(v.size1, v.size2, want, root1); err != nil || r != root2 {
				t.Fatalf("RootFromConsistencyProof = %s, %v", r, err)
			}
			checkConsistencyNegatives(t, newRefTree(leaves), v.size1, v.size2, want)
		})
	}
}

// Every proof of the 8-leaf tree against the reference implementation, with
// the negative probes beside each.
func TestRFCTreeAllProofs(t *testing.T) {
	leaves, store := rfcTree()
	ref := newRefTree(leaves)
	root := func(n uint64) Hash { return h(rfcRoots[n]) }
	for n := uint64(1); n <= 8; n++ {
		if ref.mth(0, n) != root(n) {
			t.Fatalf("reference root %d disagrees with the published one", n)
		}
		for i := uint64(0); i < n; i++ {
			p := mustProof(t, store, inclusionNodes(t, i, n))
			if !hashesEqual(p, ref.inclusion(i, n)) {
				t.Fatalf("inclusion %d/%d differs from reference", i, n)
			}
			if err := VerifyInclusion(leaves[i], i, n, p, root(n)); err != nil {
				t.Fatal(err)
			}
			checkInclusionNegatives(t, ref, i, n, p)
		}
		for m := uint64(0); m <= n; m++ {
			p := mustProof(t, store, consistencyNodes(t, m, n))
			if !hashesEqual(p, ref.consistency(m, n)) {
				t.Fatalf("consistency %d/%d differs from reference", m, n)
			}
			if err := VerifyConsistency(m, n, p, root(m), root(n)); err != nil {
				t.Fatal(err)
			}
			checkConsistencyNegatives(t, ref, m, n, p)
		}
	}
}

func idsEqual(a, b []NodeID) bool {
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

func inclusionNodes(t testing.TB, i, n uint64) Nodes {
	t.Helper()
	nodes, err := InclusionNodes(i, n)
	if err != nil {
		t.Fatalf("InclusionNodes(%d, %d): %v", i, n, err)
	}
	return nodes
}

func consistencyNodes(t testing.TB, m, n uint64) Nodes {
	t.Helper()
	nodes, err := ConsistencyNodes(m, n)
	if err != nil {
		t.Fatalf("ConsistencyNodes(%d, %d): %v", m, n, err)
	}
	return nodes
}

func mustProof(t testing.TB, s *nodeStore, nodes Nodes) []Hash {
	t.Helper()
	p, err := nodes.Rehash(s.fetch(nodes.IDs))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHashFromBytes(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 64} {
		if _, err := HashFromBytes(make([]byte, n)); err == nil {
			t.Errorf("HashFromBytes(%d bytes) succeeded", n)
		}
	}
	want := h(rfcRoots[8])
	got, err := HashFromBytes(want[:])
	if err != nil || got != want || got.String() != rfcRoots[8] {
		t.Errorf("HashFromBytes round trip: %s, %v", got, err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	leaves := testLeaves(8)
	err := VerifyInclusion(leaves[0], 0, 8, nil, h(rfcRoots[8]))
	if !errors.Is(err, ErrInvalidProof) {
		t.Errorf("short proof: %v, want ErrInvalidProof", err)
	}
	p := hs(rfcInclusion[1].proof)
	err = VerifyInclusion(leaves[0], 0, 8, p, h(rfcRoots[7]))
	if !errors.Is(err, ErrRootMismatch) {
		t.Errorf("wrong root: %v, want ErrRootMismatch", err)
	}
}
