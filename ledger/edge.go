package ledger

import (
	"fmt"
	"slices"

	"github.com/auditledger/ledgerd/merkle"
)

// The right edge of the tree — the partial tile of every tile level — is
// the only part of the stored tree that changes, and it changes only when
// a batch is published. Proofs read it from an in-memory edgeView built
// for the published state, so they touch Pebble only for full tiles that
// are not in the tile cache.

// edgeTile is the partial tile of one tile level, with every complete
// node inside it: levels[r][k] is node (r, k) of the tile (levels[0] is
// its stored row, as wide as the tile is at the view's size). Immutable.
type edgeTile struct {
	index  uint64
	levels [merkle.TileHeight + 1][]merkle.Hash
}

// edgeView is the right edge of the tree at one published state. It is
// immutable and shared by every reader of that state.
type edgeView struct {
	state *TreeState
	tiles [maxTileLevels]*edgeTile // nil where the level has no partial tile
}

// node returns node (r, k) of tile (level, index) if the view holds it.
func (ev *edgeView) node(level uint8, index uint64, r uint8, k int) (merkle.Hash, bool) {
	if int(level) >= len(ev.tiles) {
		return merkle.Hash{}, false
	}
	et := ev.tiles[level]
	if et == nil || et.index != index || k >= len(et.levels[r]) {
		return merkle.Hash{}, false
	}
	return et.levels[r][k], true
}

// full reports whether tile (level, index) is full at the view's size.
func (ev *edgeView) full(level uint8, index uint64) bool {
	return index < levelCount(ev.state.Size, level)/merkle.TileWidth
}

// publishedEdge returns the edge view of the published state, building it (once
// per published state, by the first reader that needs it) from the rows
// Pebble holds. Pebble is never behind the published state (a batch is
// published after it is committed) and rows only grow, so the stored
// row of the partial tile, cut to its width at the published size, is
// the exact row at that size. The view may be for a state newer than one
// a caller loaded before: every node complete at the older size is
// complete, with the same hash, at the newer one.
func (s *Store) publishedEdge() (*edgeView, error) {
	c := s.tiles
	p := s.state.Load()
	if ev := c.edge.Load(); ev != nil && ev.state == p {
		return ev, nil
	}
	c.edgeMu.Lock()
	defer c.edgeMu.Unlock()
	p = s.state.Load()
	old := c.edge.Load()
	if old != nil && old.state == p {
		return old, nil
	}
	ev := &edgeView{state: p}
	for lvl := range uint8(maxTileLevels) {
		count := levelCount(p.Size, lvl)
		w := int(count % merkle.TileWidth)
		if w == 0 {
			continue
		}
		idx := count / merkle.TileWidth
		var prev *edgeTile
		if old != nil && old.tiles[lvl] != nil && old.tiles[lvl].index == idx {
			prev = old.tiles[lvl]
		}
		if prev != nil && len(prev.levels[0]) == w {
			ev.tiles[lvl] = prev // unchanged since the last view
			continue
		}
		row, err := s.tileRow(lvl, idx)
		if err != nil {
			return nil, err
		}
		if len(row) < w {
			return nil, fmt.Errorf("%w: tile %d/%d has %d hashes, want %d", ErrCorrupt, lvl, idx, len(row), w)
		}
		ev.tiles[lvl] = newEdgeTile(idx, row[:w], prev)
	}
	c.edge.Store(ev)
	return ev, nil
}

// newEdgeTile computes the complete nodes of a partial tile from its row,
// reusing those of prev (an earlier, narrower view of the same tile) when
// its row is a prefix of this one.
func newEdgeTile(index uint64, row []merkle.Hash, prev *edgeTile) *edgeTile {
	et := &edgeTile{index: index}
	var reuse *[merkle.TileHeight + 1][]merkle.Hash
	if prev != nil && len(prev.levels[0]) <= len(row) && slices.Equal(prev.levels[0], row[:len(prev.levels[0])]) {
		reuse = &prev.levels
	}
	tileLevels(&et.levels, row, reuse)
	return et
}

// tileLevels fills levels with row and the complete nodes above it, up
// to the tile's root. Nodes whose leaves all lie in reuse's row (a prefix
// of row) are copied from reuse instead of hashed.
func tileLevels(levels *[merkle.TileHeight + 1][]merkle.Hash, row []merkle.Hash, reuse *[merkle.TileHeight + 1][]merkle.Hash) {
	levels[0] = row
	keep := 0 // row hashes below which reuse's nodes are valid
	if reuse != nil {
		keep = len(reuse[0])
	}
	for r := 1; r <= merkle.TileHeight; r++ {
		below := levels[r-1]
		n := len(below) / 2
		if n == 0 {
			break
		}
		cur := make([]merkle.Hash, n)
		done := 0
		if keep > 0 {
			done = copy(cur, reuse[r][:min(n, keep>>r)])
		}
		for i := done; i < n; i++ {
			cur[i] = merkle.NodeHash(below[2*i], below[2*i+1])
		}
		levels[r] = cur
	}
}
