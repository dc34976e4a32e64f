// Package sealed owns the two encodings of a searchable encrypted value
// (fieldcrypt's v2 stored form), so that the field encryption that makes
// them and the ledger that stores them agree on one grammar.
//
// Events and API responses carry the text:
//
//	"pii:v2:" "d" base64url(id[12]) ":" base64url(payload)   keyed
//	"pii:v2:"                       ":" base64url(payload)   keyless
//
// Leaves of format 2, and the events field encryption hands to the
// ledger, carry the binary:
//
//	0xF9 id[12] payload   keyed
//	0xF8 payload          keyless
//
// with payload (synthetic IV || ciphertext) at least MinPayload bytes
// and base64url unpadded and canonical. No UTF-8 text starts with 0xF8
// or 0xF9, so a binary value is never mistaken for a client's text.
// Every binary value has exactly one text and every canonical text one
// binary value, so a leaf holding either decodes to the same entry.
package sealed

import (
	"encoding/base64"
	"strings"
)

const (
	Keyless = 0xF8 // first byte of a keyless binary value
	Keyed   = 0xF9 // first byte of a keyed binary value

	Prefix     = "pii:v2:"
	IDBytes    = 12 // a data key id in binary
	IDText     = 17 // and in text: "d" + 16 base64url characters
	MinPayload = 16 // the synthetic IV
)

var b64 = base64.RawURLEncoding.Strict()

// IsBinary reports whether b is a well-formed binary value.
func IsBinary[T string | []byte](b T) bool {
	switch {
	case len(b) >= 1+MinPayload && b[0] == Keyless:
		return true
	case len(b) >= 1+IDBytes+MinPayload && b[0] == Keyed:
		return true
	}
	return false
}

// MaybeBinary reports whether b starts like a binary value: no text does.
func MaybeBinary[T string | []byte](b T) bool {
	return len(b) > 0 && (b[0] == Keyless || b[0] == Keyed)
}

// AppendBinary appends the binary value of payload under the data key
// whose id is id (IDBytes long), or keyless when id is nil.
func AppendBinary(dst, id, payload []byte) []byte {
	if id == nil {
		dst = append(dst, Keyless)
	} else {
		dst = append(append(dst, Keyed), id...)
	}
	return append(dst, payload...)
}

// Split returns the key id (nil when keyless) and payload of a
// well-formed binary value.
func Split(b []byte) (id, payload []byte, ok bool) {
	if !IsBinary(b) {
		return nil, nil, false
	}
	if b[0] == Keyless {
		return nil, b[1:], true
	}
	return b[1 : 1+IDBytes], b[1+IDBytes:], true
}

// TextLen is the length of the text of binary value b (IsBinary).
func TextLen[T string | []byte](b T) int {
	if b[0] == Keyless {
		return len(Prefix) + 1 + b64.EncodedLen(len(b)-1)
	}
	return len(Prefix) + IDText + 1 + b64.EncodedLen(len(b)-1-IDBytes)
}

// AppendText appends the text of b, or reports false when b is not a
// well-formed binary value.
func AppendText(dst, b []byte) ([]byte, bool) {
	id, payload, ok := Split(b)
	if !ok {
		return dst, false
	}
	dst = append(dst, Prefix...)
	if id != nil {
		dst = b64.AppendEncode(append(dst, 'd'), id)
	}
	dst = append(dst, ':')
	return b64.AppendEncode(dst, payload), true
}

// Text is the text of b, or false when b is not a well-formed binary
// value.
func Text[T string | []byte](b T) (string, bool) {
	if !IsBinary(b) {
		return "", false
	}
	out, _ := AppendText(make([]byte, 0, TextLen(b)), []byte(b))
	return string(out), true
}

// AppendFromText appends the binary value of s, or reports false (and
// appends nothing) when s is not the canonical text of one.
func AppendFromText(dst []byte, s string) ([]byte, bool) {
	if len(s) < len(Prefix)+1 || s[:len(Prefix)] != Prefix {
		return dst, false
	}
	rest := s[len(Prefix):]
	start := len(dst)
	if rest[0] == ':' {
		dst = append(dst, Keyless)
	} else {
		if len(rest) < IDText+1 || rest[0] != 'd' || rest[IDText] != ':' {
			return dst, false
		}
		var err error
		if dst, err = decode(append(dst, Keyed), rest[1:IDText]); err != nil || len(dst)-start != 1+IDBytes {
			return dst[:start], false
		}
		rest = rest[IDText:]
	}
	at := len(dst)
	dst, err := decode(dst, rest[1:])
	if err != nil || len(dst)-at < MinPayload {
		return dst[:start], false
	}
	return dst, true
}

// decode appends the strict base64url decoding of s. The decoder skips
// line breaks even in strict mode: text with one would not come back
// the same.
func decode(dst []byte, s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return dst, base64.CorruptInputError(strings.IndexAny(s, "\r\n"))
	}
	return b64.AppendDecode(dst, []byte(s))
}
