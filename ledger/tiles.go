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
// missing from the cache is read from Pebble.
func (s *Store) nodeHash(ev *edgeView, id merkle.NodeID) (merkle.Hash, error) {
	t, r, start := merkle.TileForNode(id)
	k := start >> r
	if h, ok := ev.node(t.Level, t.Index, r, k); ok {
		return h, nil
	}
	if ft := s.tiles.get(t.Level, t.Index); ft != nil {
		return ft.node(r, k), nil
	}
	gen := s.tiles.gen.Load()
	var row []merkle.Hash
	var err error
	if ev.full(t.Level, t.Index) {
		// The full row was committed before the state was published; a
		// Get of it needs no view shared with the segments.
		row, err = s.fullRow(t.Level, t.Index)
	} else {
		row, err = s.tileRow(t.Level, t.Index)
	}
	if err != nil {
		return merkle.Hash{}, err
	}
	if len(row) == merkle.TileWidth {
		ft := newFullTile(row)
		s.tiles.put(t.Level, t.Index, ft, gen)
		return ft.node(r, k), nil
	}
	h, err := merkle.TileNodeHash(row, r, k)
	if err != nil {
		return merkle.Hash{}, fmt.Errorf("%w: node %d/%d: %v", ErrCorrupt, id.Level, id.Index, err)
	}
	return h, nil
}

// fullRow reads the row of a tile that is full in the published tree.
func (s *Store) fullRow(level uint8, index uint64) ([]merkle.Hash, error) {
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
	return decodeRow(v, make([]merkle.Hash, 0, merkle.TileWidth)), nil
}

func (s *Store) fetch(ev *edgeView, nodes merkle.Nodes) ([]merkle.Hash, error) {
	hashes := make([]merkle.Hash, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := s.nodeHash(ev, id)
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
	return s.nodeHash(ev, merkle.NodeID{Level: 0, Index: index})
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
	ev, err := s.publishedEdge()
	if err != nil {
		return nil, err
	}
	return s.fetch(ev, nodes)
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
	ev, err := s.publishedEdge()
	if err != nil {
		return nil, err
	}
	return s.fetch(ev, nodes)
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
	for i, id := range ids {
		h, err := s.nodeHash(ev, id)
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
	ft.levels[0] = row
	for r := 1; r <= merkle.TileHeight; r++ {
		below := ft.levels[r-1]
		cur := make([]merkle.Hash, len(below)/2)
		for i := range cur {
			cur[i] = merkle.NodeHash(below[2*i], below[2*i+1])
		}
		ft.levels[r] = cur
	}
	return ft
}

func (ft *fullTile) node(r uint8, k int) merkle.Hash { return ft.levels[r][k] }

// tileCache keeps computed full tiles (which never change), evicting the
// oldest when full, and the edge view of the published state.
type tileCache struct {
	mu    sync.Mutex
	max   int
	m     map[[2]uint64]*fullTile
	order [][2]uint64
	next  int

	// gen counts resets; a tile read before a reset is not cached after it.
	gen    atomic.Uint64
	edge   atomic.Pointer[edgeView]
	edgeMu sync.Mutex // serialises building edge views
}

func newTileCache(n int) *tileCache {
	if n <= 0 {
		n = 2048
	}
	return &tileCache{max: n, m: make(map[[2]uint64]*fullTile, n)}
}

func (c *tileCache) get(level uint8, index uint64) *fullTile {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[[2]uint64{uint64(level), index}]
}

// put caches ft, unless the cache was reset since gen was read.
func (c *tileCache) put(level uint8, index uint64, ft *fullTile, gen uint64) {
	k := [2]uint64{uint64(level), index}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok || c.gen.Load() != gen {
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, k)
	} else {
		delete(c.m, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % c.max
	}
	c.m[k] = ft
}

// forget drops the edge view and makes tiles read before the call
// uncacheable; reset calls it when a restore may have replaced the tree.
// It waits for a view being built (from rows that may predate the
// restore) so that view is dropped too.
func (c *tileCache) forget() {
	c.edgeMu.Lock()
	defer c.edgeMu.Unlock()
	c.gen.Add(1)
	c.edge.Store(nil)
}
