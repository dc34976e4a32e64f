package ledger

import (
	"encoding/binary"

	"github.com/auditledger/ledgerd/internal/sealed"
)

// Searchable encrypted values (fieldcrypt's v2 stored form) are text in
// events read back and in API responses, but bytes in leaves of format
// 2 (internal/sealed has both grammars): the base64 and the text around
// it made a leaf of an event with encrypted personal fields ~70–90 bytes
// (15%) longer, and leaf bytes cost in every hash, log write, flush and
// compaction (bench/results/2026-11-26-profile.md).
//
// An event to seal may hold such a value in either form: field
// encryption (Config.Transform) hands over the binary it made, which
// goes into the leaf as it is; a client's canonical text is converted.
// Either way the leaf is the same, and DecodeLeaf returns the text. A
// leaf holds a value in binary exactly when its text is canonical (so
// that decoding and encoding again give back the same leaf), and is of
// format 2 exactly when it holds one: leaves without encrypted values
// keep format 1, byte for byte.

// appendSealed appends s in binary, uvarint length first, when it is an
// encrypted value in binary or in canonical text, and reports whether
// it did.
func appendSealed(dst []byte, s string) ([]byte, bool) {
	if sealed.IsBinary(s) {
		return appendString(dst, s), true
	}
	if len(s) <= len(sealed.Prefix) || s[:len(sealed.Prefix)] != sealed.Prefix {
		return dst, false
	}
	// The binary is shorter than the text: its length takes at most as
	// many bytes. Leave room for the text's, then close the gap.
	start := len(dst)
	lenSize := uvarintLen(uint64(len(s)))
	dst = append(dst, make([]byte, lenSize)...)
	dst, ok := sealed.AppendFromText(dst, s)
	if !ok {
		return dst[:start], false
	}
	n := len(dst) - start - lenSize
	k := binary.PutUvarint(dst[start:], uint64(n))
	if k < lenSize {
		copy(dst[start+k:], dst[start+lenSize:])
		dst = dst[:start+k+n]
	}
	return dst, true
}

// SealedBinary returns the bytes a format-2 leaf holds for the text of
// an encrypted value, or false when the leaf holds that text as it is.
// For readers that walk leaves without DecodeLeaf: the query index keeps
// a leaf's values as they are stored, and looks values up in both forms.
func SealedBinary(text string) (string, bool) {
	if sealed.MaybeBinary(text) {
		return "", false
	}
	b, ok := sealed.AppendFromText(nil, text)
	return string(b), ok
}
