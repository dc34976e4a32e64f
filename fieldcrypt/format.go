package fieldcrypt

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/auditledger/ledgerd/internal/sealed"
)

// A field value the ledger encrypted is stored, inside the leaf, as
//
//	<class>:v1:<keyId>:<base64url(nonce || ciphertext || tag)>
//
// class is "enc" for a sensitive field (decrypted only for callers
// allowed to see sensitive data) or "pii" for a personal field (decrypted
// for every caller allowed to read events, until its data subject is
// erased). keyId is a field key ("f" + 24 hex digits) or a per-subject
// data key ("d" + 16 base64url characters, 12 random bytes). The cipher is AES-256-GCM with a
// 12-byte nonce, unpadded base64url, and the additional data is
// "ledgerd field\x00" || class || "\x00" || field name, so a ciphertext
// moved to another field or class does not decrypt.
//
// Nonces are fresh random bytes, except for searchable personal fields
// (by default the actor's id, ip, session and user agent), whose nonce is
// HMAC-SHA256(siv key of the data key, field name || 0x00 || value)[:12]
// (a synthetic IV): the same subject and value give the same stored
// string while the data key lives, so the query layer can find a
// subject's events by value (Crypter.StoredForms) and index each value
// once, without plaintext in any leaf. This reveals which events of one
// subject share a value (the data key id already ties them to one
// subject) and nothing else; sensitive fields always get random nonces.
//
// Version 2, written for searchable personal fields since v1 (v1 is still
// read, and StoredForms returns both), is shorter:
//
//	pii:v2:<dataKeyId>:<base64url(siv[16] || ciphertext)>   the event's first searchable field
//	pii:v2::<base64url(siv[16] || ciphertext)>              its other searchable fields
//
// It is deterministic authenticated encryption (SIV): siv =
// HMAC-SHA256(mac key, uvarint(len(ad)) || ad || value)[:16], with ad the
// additional data above, and the ciphertext is AES-256-CTR(enc key,
// counter block siv) of the value; the enc and mac keys are the two
// halves of HKDF-SHA256(data key, info "ledgerd searchable v2", 64
// bytes). The siv is both the nonce and the tag (12 + 16 bytes of a v1
// value become 16), and a field without a key id is under the data
// key named by the event's first v2 field that has one (in the order of
// the encryptable event fields), which saves the id's 17 characters.
// Leaves (ledger format 2) hold v2 values in binary — the key id's 12
// bytes and the payload, without base64 (internal/sealed) — and readers
// get this text back. Transform makes the binary, which the ledger
// stores as it is: neither base64 pass is on the append path.
const (
	ClassSensitive = "enc"
	ClassPersonal  = "pii"
	formatVersion  = "v1"
	formatV2       = "v2"
	nonceSize      = 12
	sivSize        = sealed.MinPayload // a v2 payload is at least its siv
	tagSize        = 16
	fieldKeyIDLen  = 25            // "f" + 24 hex
	dataKeyIDLen   = sealed.IDText // "d" + 16 base64url
)

// Placeholders returned instead of a value a caller may not see.
const (
	Encrypted     = "[encrypted]"     // sensitive, and the caller lacks read_sensitive
	Erased        = "[erased]"        // the data subject was erased (crypto-shredded)
	Undecryptable = "[undecryptable]" // no key decrypts it (wrong master key, damaged data)
)

// Sealed is a parsed encrypted value.
type Sealed struct {
	Class   string
	Version string // "v1" ("" reads as v1) or "v2"
	KeyID   string // "" in a v2 value under its event's data key
	Payload []byte // v1: nonce || ciphertext || tag; v2: siv || ciphertext
}

var errNotSealed = errors.New("fieldcrypt: not an encrypted value")

// IsSealed reports cheaply whether s looks like an encrypted value, in
// text or (v2) in binary.
func IsSealed(s string) bool {
	return sealed.MaybeBinary(s) || len(s) > 7 && s[3] == ':' && s[4] == 'v' && (s[5] == '1' || s[5] == '2' && s[:3] == ClassPersonal) && s[6] == ':' &&
		(s[:3] == ClassSensitive || s[:3] == ClassPersonal)
}

// ParseSealed parses the stored form strictly: the text, or a v2 value
// in binary (internal/sealed), as Transform hands it to the ledger.
func ParseSealed(s string) (Sealed, error) {
	if !IsSealed(s) {
		return Sealed{}, errNotSealed
	}
	if sealed.MaybeBinary(s) || s[5] == '2' {
		return parseV2(s)
	}
	rest := s[7:]
	n := fieldKeyIDLen
	if rest[0] == 'd' {
		n = dataKeyIDLen
	}
	if len(rest) < n+1 || rest[n] != ':' || !validKeyID(rest[:n]) {
		return Sealed{}, errNotSealed
	}
	p, err := decodePayload(rest[n+1:])
	if err != nil || len(p) < nonceSize+tagSize {
		return Sealed{}, errNotSealed
	}
	return Sealed{Class: s[:3], Version: formatVersion, KeyID: rest[:n], Payload: p}, nil
}

// parseV2 parses a v2 value, text or binary.
func parseV2(s string) (Sealed, error) {
	b := []byte(s)
	if !sealed.MaybeBinary(s) {
		var ok bool
		if b, ok = sealed.AppendFromText(nil, s); !ok {
			return Sealed{}, errNotSealed
		}
	}
	id, payload, ok := sealed.Split(b)
	if !ok {
		return Sealed{}, errNotSealed
	}
	v := Sealed{Class: ClassPersonal, Version: formatV2, Payload: payload}
	if id != nil {
		v.KeyID = "d" + b64.EncodeToString(id)
	}
	return v, nil
}

// decodePayload decodes unpadded base64url strictly: the decoder skips
// line breaks, which would let two strings parse to one value.
func decodePayload(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errNotSealed
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// String is the stored form.
func (v Sealed) String() string {
	var b strings.Builder
	b.Grow(8 + len(v.KeyID) + base64.RawURLEncoding.EncodedLen(len(v.Payload)))
	b.WriteString(v.Class)
	if v.Version == formatV2 {
		b.WriteString(":v2:")
	} else {
		b.WriteString(":v1:")
	}
	b.WriteString(v.KeyID)
	b.WriteByte(':')
	b.WriteString(base64.RawURLEncoding.EncodeToString(v.Payload))
	return b.String()
}

func validKeyID(id string) bool {
	switch {
	case len(id) == fieldKeyIDLen && id[0] == 'f':
		for i := 1; i < len(id); i++ {
			c := id[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	case len(id) == dataKeyIDLen && id[0] == 'd':
		_, ok := dataKeyIDBytes(id)
		return ok
	}
	return false
}

// dataKeyIDBytes is the 12 bytes a data key id names, or false when id
// is not a data key id.
func dataKeyIDBytes(id string) (b [sealed.IDBytes]byte, ok bool) {
	if len(id) != dataKeyIDLen || id[0] != 'd' {
		return b, false
	}
	n, err := b64.Decode(b[:], []byte(id[1:]))
	return b, err == nil && n == len(b)
}

func aad(class, field string) []byte {
	b := make([]byte, 0, 16+len(class)+len(field))
	b = append(b, "ledgerd field\x00"...)
	b = append(b, class...)
	b = append(b, 0)
	return append(b, field...)
}
