package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// HashSize is the size in bytes of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Hash is a SHA-256 value: a leaf hash, an interior node hash or a root.
type Hash [HashSize]byte

// String returns the lower-case hex encoding of h.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// HashFromBytes converts b into a Hash. It fails unless len(b) == HashSize.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("merkle: hash must be %d bytes, got %d", HashSize, len(b))
	}
	copy(h[:], b)
	return h, nil
}

// Domain-separation prefixes from RFC 6962 §2.1 (RFC 9162 §2.1.1).
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

var leafPrefixBytes = [1]byte{leafPrefix}

// emptyRoot is SHA-256 of the empty string, the root of the tree of size 0.
var emptyRoot = Hash(sha256.Sum256(nil))

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || data).
// It does not allocate.
func LeafHash(data []byte) Hash {
	var out Hash
	d := sha256.New() // inlined and kept on the stack: no allocation
	d.Write(leafPrefixBytes[:])
	d.Write(data)
	d.Sum(out[:0])
	return out
}

// NodeHash returns the RFC 6962 interior node hash SHA-256(0x01 || left || right).
// It does not allocate.
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// EmptyRoot returns the root of the empty tree, SHA-256("").
func EmptyRoot() Hash { return emptyRoot }
