package ledger

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// Searchable encrypted values (fieldcrypt's v2 stored form) are text in
// events — "pii:v2:" [dataKeyId] ":" base64url(siv || ciphertext), the
// key id "d" and 16 base64url characters — but bytes in leaves of
// format 2: the base64 and the text around it made a leaf of an event
// with encrypted personal fields ~70–90 bytes (15%) longer, and leaf
// bytes cost in every hash, log write, flush and compaction
// (bench/results/2026-11-26-profile.md: 7–9% of batch throughput when
// the values themselves were that short; parsing the base64 back here,
// ~0.5 µs an event, takes most of it).
//
// In a format-2 leaf, a string whose first byte is one that no UTF-8
// text starts with is such a value in binary:
//
//	0xF8 payload        "pii:v2::" base64url(payload)
//	0xF9 id[12] payload "pii:v2:d" base64url(id) ":" base64url(payload)
//
// with payload at least 16 bytes. A leaf holds a value in binary exactly
// when its text is canonical (so that decoding and encoding again give
// back the same leaf), and is of format 2 exactly when it holds one:
// leaves without encrypted values keep format 1, byte for byte.
const (
	sealedKeyless = 0xF8
	sealedKeyed   = 0xF9

	sealedPrefix  = "pii:v2:"
	sealedIDLen   = 16 // base64url characters after "d"
	sealedIDBytes = 12 // what they decode to
	sealedMinBody = 16 // the synthetic IV
)

var b64 = base64.RawURLEncoding.Strict()

// appendSealed appends s in binary, uvarint length first, when it is a
// canonical searchable encrypted value, and reports whether it did.
func appendSealed(dst []byte, s string) ([]byte, bool) {
	if len(s) < len(sealedPrefix)+1 || s[:len(sealedPrefix)] != sealedPrefix {
		return dst, false
	}
	rest := s[len(sealedPrefix):]
	marker, id := byte(sealedKeyless), ""
	if rest[0] != ':' {
		if len(rest) < 1+sealedIDLen+1 || rest[0] != 'd' || rest[1+sealedIDLen] != ':' {
			return dst, false
		}
		marker, id, rest = sealedKeyed, rest[1:1+sealedIDLen], rest[1+sealedIDLen:]
	}
	body := rest[1:]
	// The decoder skips line breaks even in strict mode: text with one
	// would not come back the same.
	if strings.ContainsAny(body, "\r\n") || strings.ContainsAny(id, "\r\n") {
		return dst, false
	}
	n := b64.DecodedLen(len(body))
	size := 1 + n
	if id != "" {
		size += sealedIDBytes
	}
	start := len(dst)
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, marker)
	if id != "" {
		var raw [sealedIDBytes]byte
		if k, err := b64.Decode(raw[:], []byte(id)); err != nil || k != len(raw) {
			return dst[:start], false
		}
		dst = append(dst, raw[:]...)
	}
	at := len(dst)
	dst = append(dst, make([]byte, n)...)
	// Unpadded input decodes to exactly DecodedLen bytes, or fails.
	if k, err := b64.Decode(dst[at:], []byte(body)); err != nil || k != n || k < sealedMinBody {
		return dst[:start], false
	}
	return dst, true
}

// isSealedBinary reports whether the bytes of a format-2 leaf string are
// an encrypted value in binary.
func isSealedBinary(b []byte) bool {
	return len(b) > 0 && (b[0] == sealedKeyless || b[0] == sealedKeyed)
}

// sealedText is the text of a value in binary (isSealedBinary), or false
// when b is not a well-formed one.
func sealedText(b []byte) (string, bool) {
	const head = 1 + sealedIDBytes
	var out []byte
	switch {
	case len(b) >= 1+sealedMinBody && b[0] == sealedKeyless:
		out = make([]byte, 0, len(sealedPrefix)+1+b64.EncodedLen(len(b)-1))
		out = append(out, sealedPrefix+":"...)
		b = b[1:]
	case len(b) >= head+sealedMinBody && b[0] == sealedKeyed:
		out = make([]byte, 0, len(sealedPrefix)+2+sealedIDLen+b64.EncodedLen(len(b)-head))
		out = append(out, sealedPrefix+"d"...)
		out = b64.AppendEncode(out, b[1:head])
		out = append(out, ':')
		b = b[head:]
	default:
		return "", false
	}
	return string(b64.AppendEncode(out, b)), true
}

// SealedBinary returns the bytes a format-2 leaf holds for the text of
// an encrypted value, or false when the leaf holds that text as it is.
// For readers that walk leaves without DecodeLeaf: the query index keeps
// a leaf's values as they are stored, and looks values up in both forms.
func SealedBinary(text string) (string, bool) {
	b, ok := appendSealed(nil, text)
	if !ok {
		return "", false
	}
	_, n := binary.Uvarint(b)
	return string(b[n:]), true
}
