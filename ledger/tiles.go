package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/merkle"
)

// tileRow reads the stored row of tile (level, index): the full row, or
// the segments of a partial tile joined in order. Rows only ever grow, so
// any stored row holds every node that was complete when it was written.
//
// One iterator reads both forms from one consistent view: a Get of the
// full row followed by a scan of the segments could miss both when the
// batch that fills the tile (writing the row, deleting the segments)
// lands in between.
func (s *Store) tileRow(level uint8, index uint64) ([]merkle.Hash, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: tileKey(level, index), UpperBound: tileKey(level, index+1)})
	if err != nil {
		return nil, fmt.Errorf("ledger: read tile %d/%d: %w", level, index, err)
	}
	defer it.Close()
	var row []merkle.Hash
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) == 11 { // the full row; segments after it are stale
			if len(v) != merkle.TileWidth*merkle.HashSize {
				return nil, fmt.Errorf("%w: tile %d/%d has %d bytes", ErrCorrupt, level, index, len(v))
			}
			return decodeRow(v, nil), nil
		}
		if len(k) != 13 || int(binary.BigEndian.Uint16(k[11:])) != len(row) ||
			len(v) == 0 || len(v)%merkle.HashSize != 0 || len(row)+len(v)/merkle.HashSize >= merkle.TileWidth {
			return nil, fmt.Errorf("%w: tile %d/%d: bad segment %x", ErrCorrupt, level, index, k)
		}
		row = decodeRow(v, row)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("ledger: read tile %d/%d: %w", level, index, err)
	}
	if len(row) == 0 {
		return nil, fmt.Errorf("%w: tile %d/%d missing", ErrCorrupt, level, index)
	}
	return row, nil
}

func decodeRow(v []byte, row []merkle.Hash) []merkle.Hash {
	for ; len(v) >= merkle.HashSize; v = v[merkle.HashSize:] {
		row = append(row, merkle.Hash(v[:merkle.HashSize]))
	}
	return row
}

// TileRow returns the stored row of a tile, for serving tlog tiles.
func (s *Store) TileRow(level uint8, index uint64) ([]merkle.Hash, error) {
	return s.tileRow(level, index)
}

// nodeHash returns the hash of a complete node. The caller guarantees the
// node is complete in the tree of ev's size. Nodes of the partial tiles
// come from ev, those of full tiles from the tile cache; only a full tile
// missing from the cache is read from Pebble (once per proof: rows keeps
// the last row read). A full tile read for the first time is hashed up
// and cached whole; one read again after its eviction from the cache is
// served from its cached top levels and the row, which costs a few
// hashes instead of 255.
func (s *Store) nodeHash(ev *edgeView, id merkle.NodeID, rows *rowMemo) (merkle.Hash, error) {
	t, r, start := merkle.TileForNode(id)
	k := start >> r
	if h, ok := ev.node(t.Level, t.Index, r, k); ok {
		return h, nil
	}
	c := s.tiles
	if ft := c.get(t.Level, t.Index); ft != nil {
		return ft.node(r, k), nil
	}
	if !ev.full(t.Level, t.Index) {
		// Not a tile of ev's tree: only when a restore shrank the tree
		// under a reader. Read it as it is stored.
		row, err := s.tileRow(t.Level, t.Index)
		if err != nil {
			return merkle.Hash{}, err
		}
		return rowNode(row, id, r, k)
	}
	top := c.top(t.Level, t.Index)
	if top != nil && r >= topFrom {
		return top.node(r, k), nil
	}
	gen := c.gen.Load()
	row, err := rows.fullRow(s, t.Level, t.Index)
	if err != nil {
		return merkle.Hash{}, err
	}
	if top != nil {
		return rowNode(row, id, r, k)
	}
	ft := newFullTile(row)
	c.put(t.Level, t.Index, ft, gen)
	return ft.node(r, k), nil
}

func rowNode(row []merkle.Hash, id merkle.NodeID, r uint8, k int) (merkle.Hash, error) {
	if r == 0 && k < len(row) {
		return row[k], nil
	}
	h, err := merkle.TileNodeHash(row, r, k)
	if err != nil {
		return merkle.Hash{}, fmt.Errorf("%w: node %d/%d: %v", ErrCorrupt, id.Level, id.Index, err)
	}
	return h, nil
}

// rowMemo keeps the last full row one proof read: the nodes of a proof
// that lie in one tile are listed one after the other.
type rowMemo struct {
	level uint8
	index uint64
	row   []merkle.Hash
}

// fullRow reads the row of a tile that is full in the published tree.
// The full row was committed before the state was published, so a Get of
// it needs no view shared with the segments.
func (m *rowMemo) fullRow(s *Store, level uint8, index uint64) ([]merkle.Hash, error) {
	if m.row != nil && m.level == level && m.index == index {
		return m.row, nil
	}
	v, closer, err := s.db.Get(tileKey(level, index))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: full tile %d/%d missing", ErrCorrupt, level, index)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read tile %d/%d: %w", level, index, err)
	}
	defer closer.Close()
	if len(v) != merkle.TileWidth*merkle.HashSize {
		return nil, fmt.Errorf("%w: tile %d/%d has %d bytes", ErrCorrupt, level, index, len(v))
	}
	m.level, m.index = level, index
	m.row = decodeRow(v, make([]merkle.Hash, 0, merkle.TileWidth))
	return m.row, nil
}

// fetch reads the nodes of a proof from the published tree and rehashes
// them into the proof.
func (s *Store) fetch(nodes merkle.Nodes) ([]merkle.Hash, error) {
	ev, err := s.publishedEdge()
	if err != nil {
		return nil, err
	}
	hashes := make([]merkle.Hash, len(nodes.IDs))
	var rows rowMemo
	for i, id := range nodes.IDs {
		h, err := s.nodeHash(ev, id, &rows)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes)
}

// LeafHash returns the leaf hash at index as the tree holds it (the row
// of its level-0 tile), without reading the entry.
func (s *Store) LeafHash(index uint64) (merkle.Hash, error) {
	if cur := s.State().Size; index >= cur {
		return merkle.Hash{}, fmt.Errorf("%w: index %d (tree size %d)", ErrNotFound, index, cur)
	}
	ev, err := s.publishedEdge()
	if err != nil {
		return merkle.Hash{}, err
	}
	return s.nodeHash(ev, merkle.NodeID{Level: 0, Index: index}, &rowMemo{})
}

// InclusionProof returns the proof that leaf index is in the tree of the
// given size. size must not exceed the committed size.
func (s *Store) InclusionProof(index, size uint64) ([]merkle.Hash, error) {
	if cur := s.State().Size; size > cur {
		return nil, fmt.Errorf("%w: tree size %d is beyond the current size %d", ErrInvalid, size, cur)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d is not below tree size %d", ErrInvalid, index, size)
	}
	nodes, err := merkle.InclusionNodes(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.fetch(nodes)
}

// ConsistencyProof returns the proof that the tree of size1 is a prefix of
// the tree of size2. size2 must not exceed the committed size.
func (s *Store) ConsistencyProof(size1, size2 uint64) ([]merkle.Hash, error) {
	if cur := s.State().Size; size2 > cur {
		return nil, fmt.Errorf("%w: tree size %d is beyond the current size %d", ErrInvalid, size2, cur)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: from size %d is beyond to size %d", ErrInvalid, size1, size2)
	}
	nodes, err := merkle.ConsistencyNodes(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.fetch(nodes)
}

// RootAt returns the root hash of the tree at an earlier (or the current) size.
func (s *Store) RootAt(size uint64) (merkle.Hash, error) {
	st := s.State()
	if size > st.Size {
		return merkle.Hash{}, fmt.Errorf("%w: tree size %d is beyond the current size %d", ErrInvalid, size, st.Size)
	}
	if size == st.Size {
		return st.Root, nil
	}
	ev, err := s.publishedEdge()
	if err != nil {
		return merkle.Hash{}, err
	}
	ids := merkle.RangeNodes(size)
	hashes := make([]merkle.Hash, len(ids))
	var rows rowMemo
	for i, id := range ids {
		h, err := s.nodeHash(ev, id, &rows)
		if err != nil {
			return merkle.Hash{}, err
		}
		hashes[i] = h
	}
	r, err := merkle.RestoreRange(size, hashes)
	if err != nil {
		return merkle.Hash{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r.Root(), nil
}

// fullTile holds every node of a full tile: levels[r] has 256>>r hashes.
type fullTile struct {
	levels [merkle.TileHeight + 1][]merkle.Hash
}

func newFullTile(row []merkle.Hash) *fullTile {
	ft := &fullTile{}
	tileLevels(&ft.levels, row, nil)
	return ft
}

func (ft *fullTile) node(r uint8, k int) merkle.Hash { return ft.levels[r][k] }

// topFrom is the lowest tile level a tileTop keeps.
const topFrom = 4

// tileTop is the top of a full tile, its levels topFrom..8 (16+8+4+2+1
// nodes, 1 KiB): what a proof needs from the tile besides the row, short
// of a few hashes over it.
type tileTop [2*merkle.TileWidth>>topFrom - 1]merkle.Hash

func (ft *fullTile) top() *tileTop {
	var t tileTop
	off := 0
	for r := topFrom; r <= merkle.TileHeight; r++ {
		off += copy(t[off:], ft.levels[r])
	}
	return &t
}

func (t *tileTop) node(r uint8, k int) merkle.Hash {
	off := 0
	for l := uint8(topFrom); l < r; l++ {
		off += merkle.TileWidth >> l
	}
	return t[off+k]
}

// tileCache keeps computed full tiles (which never change) and, for more
// tiles, their tops; and the edge view of the published state. Both
// caches evict with the clock algorithm: an entry used since the hand
// last passed it gets a second chance, so the tiles every proof needs
// (those of the upper levels) stay.
type tileCache struct {
	full clock[*fullTile]
	tops clock[*tileTop]

	// gen counts resets; a tile read before a reset is not cached after it.
	gen    atomic.Uint64
	edge   atomic.Pointer[edgeView]
	edgeMu sync.Mutex // serialises building edge views
}

// topsPerTile is how many tile tops are kept per full tile: a top is
// 1/16 the size, so the tops take half the memory of the full tiles.
const topsPerTile = 8

func newTileCache(n int) *tileCache {
	if n <= 0 {
		n = 2048
	}
	return &tileCache{full: newClock[*fullTile](n), tops: newClock[*tileTop](n * topsPerTile)}
}

func tileCacheKey(level uint8, index uint64) [2]uint64 { return [2]uint64{uint64(level), index} }

func (c *tileCache) get(level uint8, index uint64) *fullTile {
	ft, _ := c.full.get(tileCacheKey(level, index))
	return ft
}

func (c *tileCache) top(level uint8, index uint64) *tileTop {
	t, _ := c.tops.get(tileCacheKey(level, index))
	return t
}

// put caches ft and its top, unless the cache was reset since gen was read.
func (c *tileCache) put(level uint8, index uint64, ft *fullTile, gen uint64) {
	k := tileCacheKey(level, index)
	current := func() bool { return c.gen.Load() == gen }
	c.tops.put(k, ft.top(), current)
	c.full.put(k, ft, current)
}

// forget drops every cached tile and the edge view, and makes tiles read
// before the call uncacheable: a restore may have replaced the tree. It
// waits for a view being built (from rows that may predate the restore)
// so that view is dropped too.
func (c *tileCache) forget() {
	c.edgeMu.Lock()
	defer c.edgeMu.Unlock()
	c.gen.Add(1)
	c.edge.Store(nil)
	c.full.clear()
	c.tops.clear()
}

// clock is a fixed-size map evicting with the clock algorithm.
type clock[V any] struct {
	mu    sync.Mutex
	m     map[[2]uint64]*clockEntry[V]
	slots [][2]uint64
	hand  int
	max   int
}

type clockEntry[V any] struct {
	v    V
	used bool
}

func newClock[V any](n int) clock[V] {
	return clock[V]{m: make(map[[2]uint64]*clockEntry[V]), max: n}
}

func (c *clock[V]) get(k [2]uint64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		var zero V
		return zero, false
	}
	e.used = true
	return e.v, true
}

// put adds k unless present or ok, called under the lock, says no.
func (c *clock[V]) put(k [2]uint64, v V, ok func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, in := c.m[k]; in || !ok() {
		return
	}
	if len(c.slots) < c.max {
		c.slots = append(c.slots, k)
	} else {
		for e := c.m[c.slots[c.hand]]; e != nil && e.used; e = c.m[c.slots[c.hand]] {
			e.used = false
			c.hand = (c.hand + 1) % c.max
		}
		delete(c.m, c.slots[c.hand])
		c.slots[c.hand] = k
		c.hand = (c.hand + 1) % c.max
	}
	c.m[k] = &clockEntry[V]{v: v}
}

func (c *clock[V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.slots = c.slots[:0]
	c.hand = 0
}
