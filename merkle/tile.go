package merkle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Tile geometry of C2SP tlog-tiles: every tile is a subtree of height 8
// whose bottom row (up to 256 hashes) is what gets stored and served.
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight // 256
)

// maxTilePathLevel is the largest tile level the C2SP spec allows in a path.
const maxTilePathLevel = 63

// TileID names a tile: tile level L holds nodes of tree level L*8; tile index
// N holds those nodes [N*256, N*256+Width). Width is 1..256, 256 meaning a
// full tile; a smaller width is a partial tile (the right edge of the tree).
type TileID struct {
	Level uint8
	Index uint64
	Width int
}

// TileForNode says where node id lives: the tile (Level = id.Level/8,
// Index), the level r = id.Level%8 of the node inside the tile, and the
// offset range [start, start + 1<<r) of the tile's stored row that hashes up
// to it. Width in the returned TileID is the minimum width the tile must have
// to contain the node: start + 1<<r.
//
// Fetch the tile (any width >= t.Width) and compute the hash with
// TileNodeHash(row, r, start>>r).
func TileForNode(id NodeID) (t TileID, r uint8, start int) {
	r = id.Level % TileHeight
	t.Level = id.Level / TileHeight
	t.Index = id.Index >> (TileHeight - r)
	start = int((id.Index << r) & (TileWidth - 1))
	t.Width = start + 1<<r
	return t, r, start
}

// TileNodeHash computes node (r, k) inside a tile from the tile's stored row:
// the root of the perfect subtree over row[k<<r : (k+1)<<r]. It fails if r >
// 8, k < 0 or the row is too short.
func TileNodeHash(row []Hash, r uint8, k int) (Hash, error) {
	if r > TileHeight {
		return Hash{}, fmt.Errorf("merkle: level %d inside a tile exceeds tile height %d", r, TileHeight)
	}
	if k < 0 || k >= len(row)>>r {
		return Hash{}, fmt.Errorf("merkle: tile row of %d hashes has no node (%d,%d)", len(row), r, k)
	}
	return hashPerfect(row[k<<r : (k+1)<<r]), nil
}

// TileWidthAt returns the width that tile (level, index) has in a tree of
// treeSize leaves: TileWidth for a full tile, 1..255 for the partial tile on
// the right edge, 0 if the tile does not exist (yet) at that size.
func TileWidthAt(level uint8, index, treeSize uint64) int {
	shift := uint(level) * TileHeight
	if shift >= 64 {
		return 0
	}
	nodes := treeSize >> shift // full nodes at tree level level*8
	full := nodes / TileWidth
	switch {
	case index < full:
		return TileWidth
	case index == full:
		return int(nodes % TileWidth)
	default:
		return 0
	}
}

// Path returns the C2SP tlog-tiles path of the tile, relative to the log
// prefix: "tile/<L>/<N>" with N in zero-padded 3-digit path elements, all but
// the last prefixed with "x" (index 1234067 is x001/x234/067), followed by
// ".p/<W>" when 1 <= Width <= 255. Any other Width is treated as full.
func (t TileID) Path() string {
	var b strings.Builder
	b.Grow(40)
	b.WriteString("tile/")
	b.WriteString(strconv.Itoa(int(t.Level)))
	b.WriteByte('/')
	b.WriteString(encodeTileIndex(t.Index))
	if t.Width >= 1 && t.Width < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.Width))
	}
	return b.String()
}

// String returns Path().
func (t TileID) String() string { return t.Path() }

func encodeTileIndex(n uint64) string {
	// Build from the least significant group; 7 groups cover 2^64.
	var groups [7]uint64
	k := 0
	for {
		groups[k] = n % 1000
		k++
		n /= 1000
		if n == 0 {
			break
		}
	}
	var b strings.Builder
	b.Grow(k * 5)
	for i := k - 1; i >= 0; i-- {
		if i > 0 {
			b.WriteByte('x')
		}
		g := groups[i]
		b.WriteByte(byte('0' + g/100))
		b.WriteByte(byte('0' + g/10%10))
		b.WriteByte(byte('0' + g%10))
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String()
}

var errTilePath = errors.New("merkle: malformed tile path")

// ParseTilePath parses a C2SP tlog-tiles Merkle tree tile path such as
// "tile/0/x001/234" or "tile/2/005.p/7" (no log prefix, no leading slash).
// It is strict: it accepts exactly the paths that TileID.Path produces for
// levels 0..63, so non-canonical spellings (leading zeros, a leading x000
// element, .p/256, .p/0, entry bundle paths) are rejected.
func ParseTilePath(path string) (TileID, error) {
	var t TileID
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return t, fmt.Errorf("%w %q: missing tile/ prefix", errTilePath, path)
	}
	lvl, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return t, fmt.Errorf("%w %q: missing index", errTilePath, path)
	}
	level, ok := parseCanonicalUint(lvl, maxTilePathLevel)
	if !ok {
		return t, fmt.Errorf("%w %q: bad level %q", errTilePath, path, lvl)
	}
	t.Level = uint8(level)
	t.Width = TileWidth
	if idx, w, partial := strings.Cut(rest, ".p/"); partial {
		width, ok := parseCanonicalUint(w, TileWidth-1)
		if !ok || width == 0 {
			return t, fmt.Errorf("%w %q: bad partial width %q", errTilePath, path, w)
		}
		t.Width = int(width)
		rest = idx
	}
	index, ok := parseTileIndex(rest)
	if !ok {
		return TileID{}, fmt.Errorf("%w %q: bad index %q", errTilePath, path, rest)
	}
	t.Index = index
	return t, nil
}

// parseCanonicalUint parses a decimal with no sign and no leading zeros,
// at most max.
func parseCanonicalUint(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

// parseTileIndex parses "x001/x234/067"-style indices, canonical form only.
func parseTileIndex(s string) (uint64, bool) {
	elems := strings.Split(s, "/")
	if len(elems) > 7 {
		return 0, false
	}
	var n uint64
	for i, e := range elems {
		last := i == len(elems)-1
		if !last {
			if len(e) != 4 || e[0] != 'x' {
				return 0, false
			}
			e = e[1:]
		}
		if len(e) != 3 {
			return 0, false
		}
		var g uint64
		for j := 0; j < 3; j++ {
			c := e[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			g = g*10 + uint64(c-'0')
		}
		if i == 0 && !last && g == 0 {
			return 0, false // leading x000 element: not canonical
		}
		// n*1000 + g must not overflow.
		if n > (^uint64(0)-g)/1000 {
			return 0, false
		}
		n = n*1000 + g
	}
	return n, true
}
