package merkle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestTilePathVectors(t *testing.T) {
	// Paths from the C2SP tlog-tiles spec (index 1234067 -> x001/x234/067)
	// and the shapes the issue names.
	cases := []struct {
		id   TileID
		path string
	}{
		{TileID{0, 0, 256}, "tile/0/000"},
		{TileID{0, 0, 1}, "tile/0/000.p/1"},
		{TileID{0, 1234, 256}, "tile/0/x001/234"},
		{TileID{0, 1234, 7}, "tile/0/x001/234.p/7"},
		{TileID{0, 1234067, 256}, "tile/0/x001/x234/067"},
		{TileID{2, 5, 255}, "tile/2/005.p/255"},
		{TileID{63, 999, 256}, "tile/63/999"},
		{TileID{1, 1000, 256}, "tile/1/x001/000"},
		{TileID{0, math.MaxUint64, 256}, "tile/0/x018/x446/x744/x073/x709/x551/615"},
	}
	for _, c := range cases {
		if got := c.id.Path(); got != c.path {
			t.Errorf("%+v.Path() = %q, want %q", c.id, got, c.path)
		}
		got, err := ParseTilePath(c.path)
		if err != nil || got != c.id {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want %+v", c.path, got, err, c.id)
		}
	}
	// Widths outside 1..255 print as full tiles.
	for _, w := range []int{0, -1, 256, 1000} {
		if got := (TileID{0, 3, w}).Path(); got != "tile/0/003" {
			t.Errorf("width %d: %q", w, got)
		}
	}
}

func TestParseTilePathRejects(t *testing.T) {
	for _, p := range []string{
		"", "tile", "tile/", "tile/0", "tile/0/", "/tile/0/000", "tile/0/000/",
		"tile/00/000", "tile/01/000", "tile/64/000", "tile/-1/000", "tile/+1/000", "tile/ 1/000",
		"tile/entries/000", "tile/0/00", "tile/0/0000", "tile/0/x000", "tile/0/x001",
		"tile/0/x000/001", "tile/0/001/234", "tile/0/xx01/234", "tile/0/X001/234",
		"tile/0/x01/234", "tile/0/x001/x234", "tile/0/x001//234", "tile/0/1a3",
		"tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/007", "tile/0/000.p/", "tile/0/000.p",
		"tile/0/000.p/1/", "tile/0/000.p/1.p/2", "tile/0/000.P/1", "tile/0/000.p/+1", "tile/0/000.p/ 1",
		"tile/0/x018/x446/x744/x073/x709/x551/616", // 2^64
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000",
		"tile/0/000\x00", "tile/0/٠٠٠",
	} {
		if id, err := ParseTilePath(p); err == nil {
			t.Errorf("ParseTilePath(%q) = %+v, want error", p, id)
		}
	}
}

// The example of the C2SP spec: a tree of size 70,000 has 273 full level-0
// tiles and one of width 112, one full level-1 tile and one of width 17, and
// a level-2 tile of width 1; a tree of size 256 has a full level-0 tile and a
// level-1 tile of width 1.
func TestTileWidthAt(t *testing.T) {
	check := func(level uint8, index, size uint64, want int) {
		t.Helper()
		if got := TileWidthAt(level, index, size); got != want {
			t.Errorf("TileWidthAt(%d, %d, %d) = %d, want %d", level, index, size, got, want)
		}
	}
	check(0, 0, 70000, 256)
	check(0, 272, 70000, 256)
	check(0, 273, 70000, 112)
	check(0, 274, 70000, 0)
	check(1, 0, 70000, 256)
	check(1, 1, 70000, 17)
	check(1, 2, 70000, 0)
	check(2, 0, 70000, 1)
	check(3, 0, 70000, 0)
	check(0, 0, 256, 256)
	check(0, 1, 256, 0)
	check(1, 0, 256, 1)
	check(0, 0, 0, 0)
	check(8, 0, math.MaxUint64, 0)
	check(7, 0, math.MaxUint64, 255)
}

func TestTileForNode(t *testing.T) {
	cases := []struct {
		id    NodeID
		tile  TileID
		r     uint8
		start int
	}{
		{NodeID{0, 0}, TileID{0, 0, 1}, 0, 0},
		{NodeID{0, 255}, TileID{0, 0, 256}, 0, 255},
		{NodeID{0, 256}, TileID{0, 1, 1}, 0, 0},
		{NodeID{1, 5}, TileID{0, 0, 12}, 1, 10},
		{NodeID{7, 1}, TileID{0, 0, 256}, 7, 128},
		{NodeID{7, 2}, TileID{0, 1, 128}, 7, 0},
		{NodeID{8, 0}, TileID{1, 0, 1}, 0, 0},
		{NodeID{9, 3}, TileID{1, 0, 8}, 1, 6},
		{NodeID{63, 0}, TileID{7, 0, 128}, 7, 0},
		{NodeID{0, math.MaxUint64}, TileID{0, math.MaxUint64 >> 8, 256}, 0, 255},
	}
	for _, c := range cases {
		tile, r, start := TileForNode(c.id)
		if tile != c.tile || r != c.r || start != c.start {
			t.Errorf("TileForNode(%v) = %+v, %d, %d; want %+v, %d, %d", c.id, tile, r, start, c.tile, c.r, c.start)
		}
	}
	if _, err := TileNodeHash(make([]Hash, 3), 1, 1); err == nil {
		t.Error("TileNodeHash past the row succeeded")
	}
	if _, err := TileNodeHash(make([]Hash, 256), 9, 0); err == nil {
		t.Error("TileNodeHash with r > 8 succeeded")
	}
	if _, err := TileNodeHash(make([]Hash, 4), 0, -1); err == nil {
		t.Error("TileNodeHash with k < 0 succeeded")
	}
	for _, n := range []int{0, 3, 6, 255} {
		if _, err := HashFullSubtree(make([]Hash, n)); err == nil {
			t.Errorf("HashFullSubtree(%d hashes) succeeded", n)
		}
	}
}

// tileStore keeps only what a tiled log stores: the rows of levels 0, 8, 16.
// Its tiles are cut at a given tree size, so partial tiles are exercised.
type tileStore struct {
	rows map[uint8][]Hash // tree level (multiple of 8) -> every node of it
}

func (s *tileStore) visit(id NodeID, h Hash) {
	if id.Level%TileHeight == 0 {
		s.rows[id.Level] = append(s.rows[id.Level], h)
	}
}

// tile returns the row of tile t as served at tree size `size`.
func (s *tileStore) tile(t TileID, size uint64) ([]Hash, error) {
	w := TileWidthAt(t.Level, t.Index, size)
	if w == 0 {
		return nil, fmt.Errorf("tile %s does not exist at size %d", t.Path(), size)
	}
	if w < t.Width {
		return nil, fmt.Errorf("tile %s has width %d at size %d, node needs %d", t.Path(), w, size, t.Width)
	}
	row := s.rows[t.Level*TileHeight]
	lo := t.Index * TileWidth
	return row[lo : lo+uint64(w)], nil
}

func (s *tileStore) fetch(ids []NodeID, size uint64) ([]Hash, error) {
	out := make([]Hash, len(ids))
	for i, id := range ids {
		t, r, start := TileForNode(id)
		row, err := s.tile(t, size)
		if err != nil {
			return nil, err
		}
		if out[i], err = TileNodeHash(row, r, start>>r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// A storage layer that keeps only tile rows can serve every proof: each node
// a proof asks for lies in a tile that exists, wide enough, at that tree
// size, and the hashes it computes are those of the full node store.
func TestProofsFromTiles(t *testing.T) {
	const N = 70000
	leaves := testLeaves(N)
	ts := &tileStore{rows: map[uint8][]Hash{}}
	all := &nodeStore{}
	r := NewRange()
	for _, l := range leaves {
		r.Append(l, func(id NodeID, h Hash) { all.visit(id, h); ts.visit(id, h) })
	}
	ref := newRefTree(leaves)
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := []uint64{1, 255, 256, 257, 511, 512, 65535, 65536, 65537, N}
	for len(sizes) < 60 {
		sizes = append(sizes, 1+rng.Uint64N(N))
	}
	for _, n := range sizes {
		// Root at an old size from tiles.
		hashes, err := ts.fetch(RangeNodes(n), n)
		if err != nil {
			t.Fatalf("size %d: range nodes: %v", n, err)
		}
		root, err := RootFromNodes(n, hashes)
		if err != nil || root != ref.mth(0, n) {
			t.Fatalf("size %d: root from tiles %s, %v", n, root, err)
		}
		for k := 0; k < 20; k++ {
			i := rng.Uint64N(n)
			nodes := inclusionNodes(t, i, n)
			got, err := ts.fetch(nodes.IDs, n)
			if err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, n, err)
			}
			if !hashesEqual(got, all.fetch(nodes.IDs)) {
				t.Fatalf("inclusion %d/%d: tile hashes differ from stored nodes", i, n)
			}
			p, _ := nodes.Rehash(got)
			if err := VerifyInclusion(leaves[i], i, n, p, root); err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, n, err)
			}
			m := rng.Uint64N(n + 1)
			nodes = consistencyNodes(t, m, n)
			got, err = ts.fetch(nodes.IDs, n)
			if err != nil {
				t.Fatalf("consistency %d/%d: %v", m, n, err)
			}
			if !hashesEqual(got, all.fetch(nodes.IDs)) {
				t.Fatalf("consistency %d/%d: tile hashes differ from stored nodes", m, n)
			}
		}
	}
}

// Every node ID TileForNode maps round-trips through its tile's path, and
// the tile row really hashes up to the node.
func TestTileForNodeHashes(t *testing.T) {
	const N = 1 << 17
	leaves := testLeaves(N)
	ts := &tileStore{rows: map[uint8][]Hash{}}
	all := &nodeStore{}
	r := NewRange()
	for _, l := range leaves {
		r.Append(l, func(id NodeID, h Hash) { all.visit(id, h); ts.visit(id, h) })
	}
	for level := range all.levels {
		for idx := 0; idx < len(all.levels[level]); idx += 1 + idx/3 {
			id := NodeID{uint8(level), uint64(idx)}
			tile, r, start := TileForNode(id)
			if back, err := ParseTilePath(tile.Path()); err != nil || back != tile {
				t.Fatalf("%v: tile path %q does not round-trip: %+v, %v", id, tile.Path(), back, err)
			}
			row, err := ts.tile(tile, N)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TileNodeHash(row, r, start>>r)
			if err != nil || got != all.get(id) {
				t.Fatalf("%v: TileNodeHash = %s, %v", id, got, err)
			}
		}
	}
}
