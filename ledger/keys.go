package ledger

import (
	"encoding/binary"

	"github.com/auditledger/ledgerd/merkle"
)

// The Pebble key space. Every key starts with a one-byte table tag and a
// slash, so each table is one contiguous range and tables never interleave.
//
//	e/<index:8 BE>          → leaf bytes                    (entries)
//	i/<event id>            → <index:8 BE>                  (id → index)
//	H/<bucket:1><group:4 BE> → (hash[1:9] offset:2 BE)*     (leaf hash → index, per 2^16 entries; hashindex.go)
//	h/<leaf hash:32>        → <index:8 BE>                  (leaf hash → index, written before groups; read only)
//	t/<level:1><tile:8 BE>  → 256×32 bytes                  (full tlog tile rows)
//	t/<level:1><tile:8 BE><start:2 BE> → N×32 bytes         (segments of a partial tile)
//	m/state                 → tree state (see encodeState)
//	m/format                → key-space version, "2" (keySpaceVersion)
//
// Reserved for other packages, which write through the Apply hooks or
// their own Raft commands so that every node holds the same bytes:
//
//	q/  query indexes       f/  feed and sink cursors
//	s/  security (tokens, subject keys)   x/  tiering
//	c/  cluster membership (node id → addresses)
const (
	tagEntry = 'e'
	tagID    = 'i'
	tagHash  = 'h'
	tagTile  = 't'
)

var (
	keyState  = []byte("m/state")
	keyFormat = []byte("m/format")
)

// keySpaceVersion is the layout above: "2" since the leaf-hash index is
// written per group; a directory of version "1" is upgraded in place when
// it opens (its h/ keys stay and are read).
const keySpaceVersion = "2"

func entryKey(index uint64) []byte { return appendEntryKey(make([]byte, 0, 10), index) }

func appendEntryKey(dst []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagEntry, '/'), index)
}

func idKey(id string) []byte {
	k := make([]byte, 2+len(id))
	k[0], k[1] = tagID, '/'
	copy(k[2:], id)
	return k
}

func hashKey(h merkle.Hash) []byte {
	return append([]byte{tagHash, '/'}, h[:]...)
}

func tileKey(level uint8, index uint64) []byte {
	k := make([]byte, 11)
	k[0], k[1], k[2] = tagTile, '/', level
	binary.BigEndian.PutUint64(k[3:], index)
	return k
}

// tileSegKey names the segment of a partial tile that starts at hash
// start. It sorts after the tile's full-row key and before the next tile's.
func tileSegKey(level uint8, index uint64, start int) []byte {
	k := make([]byte, 13)
	k[0], k[1], k[2] = tagTile, '/', level
	binary.BigEndian.PutUint64(k[3:], index)
	binary.BigEndian.PutUint16(k[11:], uint16(start))
	return k
}

// EntryKeyPrefix and EntryKey are exported for tools and tests that open
// the Pebble directory directly (tamper tests, offline inspection).
func EntryKey(index uint64) []byte { return entryKey(index) }

func decodeIndex(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
