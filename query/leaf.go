package query

import (
	"encoding/binary"
	"errors"

	"github.com/auditledger/ledgerd/ledger"
)

// The indexed fields of a leaf, read without decoding the rest (see the
// leaf layout in ledger/leaf.go). Values alias the leaf's bytes: an
// encrypted value of a format-2 leaf is indexed in its binary form
// (ledger.SealedBinary), and newPlan looks values up in both.
type fields struct {
	timestamp  []byte
	vals       [numFields][]byte
	receivedAt int64
}

// Positions of the leaf's leading strings, in canonical order.
const (
	posID = iota
	posTimestamp
	posActorID
	posActorType
	posActorIP
	posActorSession
	posActorUserAgent
	posActionType
	posResource
	posResourceID
	posResult
	posRequestID
	posEnvironment
	posApplication
	posContextVersion
	posVersion
	numStrings
)

// fieldPos maps each indexed field to its string's position in the leaf.
var fieldPos = [numFields]int{
	FieldActorID:     posActorID,
	FieldActorType:   posActorType,
	FieldActorIP:     posActorIP,
	FieldActionType:  posActionType,
	FieldResource:    posResource,
	FieldResourceID:  posResourceID,
	FieldResult:      posResult,
	FieldApplication: posApplication,
	FieldEnvironment: posEnvironment,
	FieldRequestID:   posRequestID,
}

var errLeaf = errors.New("query: malformed leaf")

// leafCursor walks a leaf's uvarint-prefixed fields.
type leafCursor struct {
	b   []byte
	off int
	bad bool
}

func (c *leafCursor) uvarint() uint64 {
	if c.bad {
		return 0
	}
	v, n := binary.Uvarint(c.b[c.off:])
	if n <= 0 {
		c.bad = true
		return 0
	}
	c.off += n
	return v
}

func (c *leafCursor) bytes() []byte {
	n := c.uvarint()
	if c.bad || n > uint64(len(c.b)-c.off) {
		c.bad = true
		return nil
	}
	v := c.b[c.off : c.off+int(n)]
	c.off += int(n)
	return v
}

// parseFields reads the indexed fields and the receive time of a leaf.
// It checks only what it reads; the Store accepted the leaf already.
func parseFields(leaf []byte, f *fields) error {
	if len(leaf) == 0 || !ledger.IsLeafFormat(leaf[0]) {
		return errLeaf
	}
	c := leafCursor{b: leaf, off: 1}
	var strs [numStrings][]byte
	for i := range strs {
		strs[i] = c.bytes()
	}
	c.uvarint() // duration
	n := c.uvarint()
	for i := uint64(0); i < n && !c.bad; i++ {
		c.bytes()
		c.bytes()
	}
	if c.bad || len(leaf)-c.off < 8 {
		return errLeaf
	}
	f.receivedAt = int64(binary.BigEndian.Uint64(leaf[c.off:]))
	f.timestamp = strs[posTimestamp]
	for fld, pos := range fieldPos {
		f.vals[fld] = strs[pos]
	}
	return nil
}

// leafTimestamp returns the event timestamp string of a leaf.
func leafTimestamp(leaf []byte) ([]byte, error) {
	if len(leaf) == 0 || !ledger.IsLeafFormat(leaf[0]) {
		return nil, errLeaf
	}
	c := leafCursor{b: leaf, off: 1}
	c.bytes() // id
	ts := c.bytes()
	if c.bad {
		return nil, errLeaf
	}
	return ts, nil
}
