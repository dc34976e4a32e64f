package ledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// Keyring holds the HMAC-SHA256 keys that sign entries: the current one,
// which signs new entries, and older ones, which still verify. Safe for
// concurrent use.
type Keyring struct {
	currentID string
	keys      map[string]*hmacKey
}

type hmacKey struct {
	pool sync.Pool // of hash.Hash, reused: a fresh HMAC costs 3× more
}

// HMACKeyID names a key without revealing it: "h" and the first 8 bytes
// of SHA-256("ledgerd hmac key id\x00" || key) in hex.
func HMACKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("ledgerd hmac key id\x00"))
	h.Write(key)
	return "h" + hex.EncodeToString(h.Sum(nil)[:8])
}

// NewKeyring returns a keyring signing with current and verifying with
// current and old. Keys shorter than 16 bytes are refused.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: make(map[string]*hmacKey)}
	for i, key := range append([][]byte{current}, old...) {
		if len(key) < 16 {
			return nil, fmt.Errorf("ledger: HMAC key %d is %d bytes; need at least 16", i, len(key))
		}
		key := append([]byte(nil), key...)
		id := HMACKeyID(key)
		if i == 0 {
			k.currentID = id
		}
		k.keys[id] = &hmacKey{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
	}
	return k, nil
}

// CurrentID is the id of the signing key.
func (k *Keyring) CurrentID() string { return k.currentID }

func (k *Keyring) mac(id string, body []byte, dst []byte) ([]byte, bool) {
	key := k.keys[id]
	if key == nil {
		return nil, false
	}
	h := key.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(body)
	dst = h.Sum(dst)
	key.pool.Put(h)
	return dst, true
}

// Verify checks the signature of a decoded entry against its leaf.
func (k *Keyring) Verify(e *Entry, leaf []byte) error {
	want, ok := k.mac(e.KeyID, leafBody(leaf, e), nil)
	if !ok {
		return fmt.Errorf("%w: unknown HMAC key id %q", ErrInvalid, e.KeyID)
	}
	if !hmac.Equal(want, e.Signature) {
		return fmt.Errorf("%w: HMAC signature does not match", ErrCorrupt)
	}
	return nil
}

// sealLeaf builds the signed leaf of e (whose KeyID is set to the current
// key) and sets e.Signature.
func (k *Keyring) sealLeaf(e *Entry) []byte {
	e.KeyID = k.currentID
	leaf := appendBody(make([]byte, 0, leafCap(e)), e)
	bodyLen := len(leaf)
	leaf = appendString(leaf, e.KeyID)
	leaf = append(leaf, sha256.Size)
	leaf, _ = k.mac(e.KeyID, leaf[:bodyLen], leaf)
	// mac appended the tag after the length byte; keep a view of it.
	e.Signature = leaf[len(leaf)-sha256.Size:]
	return leaf
}

// sealedSignature reads the signature off the end of a leaf sealed with
// key keyID: ... uvarint(len(keyID)) keyID 0x20 sig[32]. It does not
// validate the rest of the leaf.
func sealedSignature(leaf []byte, keyID string) (sig []byte, ok bool) {
	tail := 1 + len(keyID) + 1 + sha256.Size
	if keyID == "" || len(keyID) > 127 || len(leaf) < tail+1 {
		return nil, false
	}
	t := leaf[len(leaf)-tail:]
	if int(t[0]) != len(keyID) || string(t[1:1+len(keyID)]) != keyID || t[1+len(keyID)] != sha256.Size {
		return nil, false
	}
	return t[len(t)-sha256.Size:], true
}
