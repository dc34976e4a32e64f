package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/auditledger/ledgerd/internal/sealed"
)

// Entry is what the ledger stores for one event: the event plus what the
// server stamped on it before it was sequenced.
type Entry struct {
	Event
	ReceivedAt int64  // server receive time, Unix nanoseconds
	KeyID      string // id of the HMAC key that made Signature
	Signature  []byte // HMAC-SHA256 over the leaf body (see EncodeLeaf)
}

// ReceivedTime returns ReceivedAt as a time.Time in UTC.
func (e *Entry) ReceivedTime() time.Time { return time.Unix(0, e.ReceivedAt).UTC() }

// LeafFormatV1 is the first byte of every version-1 leaf, LeafFormatV2
// of a leaf that holds encrypted values in binary (sealed.go); the two
// differ in nothing else.
const (
	LeafFormatV1 = 0x01
	LeafFormatV2 = 0x02
)

// IsLeafFormat reports whether b is the first byte of a leaf this
// version reads.
func IsLeafFormat(b byte) bool { return b == LeafFormatV1 || b == LeafFormatV2 }

// The canonical leaf, version 1. Every string is uvarint(len) || bytes and
// must be valid UTF-8; integers are minimal uvarints unless said otherwise.
//
//	leaf = body sig
//	body = 0x01
//	       id timestamp
//	       actor.id actor.type actor.ip actor.session actor.userAgent
//	       action.type action.resource action.resourceId action.result
//	       context.requestId context.environment context.application context.version
//	       version
//	       uvarint(action.duration)
//	       uvarint(n) n × (key value)      metadata, keys strictly ascending
//	       receivedAt                      8 bytes, big-endian Unix nanoseconds
//	sig  = keyId uvarint(len) signature    signature = HMAC-SHA256(key, body)
//
// Format 2 (0x02) is the same but for encrypted personal values, which
// it holds in binary (sealed.go); EncodeLeaf writes it exactly when the
// entry holds one. Nodes of earlier versions cannot read it: upgrade a
// cluster's nodes before appending to it.
//
// Decoding is strict: a leaf decodes only if encoding the result in its
// format gives back the same bytes, so every entry has exactly one leaf
// of each format (and format 1 differs from 2 only for leaves written,
// before format 2, with encrypted values as text).

// appendBody appends the canonical body of e to dst.
func appendBody(dst []byte, e *Entry) []byte { return appendBodyFormat(dst, e, true) }

// appendBodyFormat appends the body of e in format 2 when v2 allows it
// and e holds an encrypted value, else in format 1.
func appendBodyFormat(dst []byte, e *Entry, v2 bool) []byte {
	start := len(dst)
	dst = append(dst, LeafFormatV1)
	sealed := false
	for i, f := range e.stringFields() {
		var bin bool
		dst, bin = appendValue(dst, *f.v, v2 && i > 0) // the id stays text: LeafID reads it raw
		sealed = sealed || bin
	}
	dst = binary.AppendUvarint(dst, uint64(e.Action.Duration))
	dst = binary.AppendUvarint(dst, uint64(len(e.Action.Metadata)))
	if len(e.Action.Metadata) > 0 {
		keys := make([]string, 0, len(e.Action.Metadata))
		for k := range e.Action.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = appendString(dst, k)
			var bin bool
			dst, bin = appendValue(dst, e.Action.Metadata[k], v2)
			sealed = sealed || bin
		}
	}
	if sealed {
		dst[start] = LeafFormatV2
	}
	return binary.BigEndian.AppendUint64(dst, uint64(e.ReceivedAt))
}

// leafCap is a capacity that holds e's leaf, signature included, without
// growing: a bound on every length prefix (3 bytes covers fields up to
// 2 MiB) plus the bytes themselves. Encrypted events are twice as long as
// plain ones, and a leaf buffer grown twice cost a tenth of their
// allocations.
func leafCap(e *Entry) int {
	const prefix = 3
	n := 1 + 2*binary.MaxVarintLen64 + 8 + prefix + len(e.KeyID) + prefix + max(len(e.Signature), sha256.Size)
	for _, f := range e.stringFields() {
		n += prefix + len(*f.v)
	}
	for k, v := range e.Action.Metadata {
		n += 2*prefix + len(k) + len(v)
	}
	return n
}

// EncodeLeaf returns the canonical leaf of e, signature included: of
// format 2 when e holds encrypted values (stored in binary), else 1.
func EncodeLeaf(e *Entry) []byte { return encodeLeaf(e, true) }

func encodeLeaf(e *Entry, v2 bool) []byte {
	dst := appendBodyFormat(make([]byte, 0, leafCap(e)), e, v2)
	dst = appendString(dst, e.KeyID)
	dst = binary.AppendUvarint(dst, uint64(len(e.Signature)))
	return append(dst, e.Signature...)
}

// appendValue appends s in binary when binary allows it and s is an
// encrypted value (appendSealed), else as text; it reports which.
func appendValue(dst []byte, s string, binary bool) ([]byte, bool) {
	if binary {
		if out, ok := appendSealed(dst, s); ok {
			return out, true
		}
	} else if t, ok := sealed.Text(s); ok {
		s = t // format 1 holds text only
	}
	return appendString(dst, s), false
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// leafReader reads the fields of a leaf in order.
type leafReader struct {
	b   []byte
	off int
	err error
}

// format is the leaf's format byte.
func (r *leafReader) format() byte { return r.b[0] }

func (r *leafReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: leaf: bad %s at byte %d", ErrInvalid, what, r.off)
	}
}

func (r *leafReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *leafReader) bytes(what string) []byte {
	if r.err != nil {
		return nil
	}
	// As r.uvarint(what + " length"), without building that name for
	// every field of every leaf read (the feed decodes each entry).
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.fail(what + " length")
		return nil
	}
	r.off += k
	if n > uint64(len(r.b)-r.off) {
		r.fail(what + " length")
		return nil
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v
}

func (r *leafReader) string(what string) string {
	v := r.bytes(what)
	if r.err != nil {
		return ""
	}
	if r.format() == LeafFormatV2 && sealed.MaybeBinary(v) {
		s, ok := sealed.Text(v)
		if !ok {
			r.fail(what + " (encrypted value)")
		}
		return s
	}
	if !utf8.Valid(v) {
		r.fail(what + " (not UTF-8)")
	}
	return string(v)
}

// DecodeLeaf parses a canonical leaf. It rejects, with an error wrapping
// ErrInvalid, anything that is not exactly the encoding of an entry.
func DecodeLeaf(leaf []byte) (*Entry, error) {
	if len(leaf) == 0 || !IsLeafFormat(leaf[0]) {
		return nil, fmt.Errorf("%w: leaf: unknown format", ErrInvalid)
	}
	if len(leaf) > MaxEventBytes+1024 {
		return nil, fmt.Errorf("%w: leaf: %d bytes is too long", ErrInvalid, len(leaf))
	}
	r := &leafReader{b: leaf, off: 1}
	e := new(Entry)
	for _, f := range e.stringFields() {
		*f.v = r.string(f.name)
	}
	d := r.uvarint("action.duration")
	if d > 1<<63-1 {
		r.fail("action.duration")
	}
	e.Action.Duration = int64(d)
	n := r.uvarint("metadata count")
	if r.err == nil && n > uint64(len(leaf)-r.off)/2 {
		r.fail("metadata count")
	}
	if r.err == nil && n > 0 {
		e.Action.Metadata = make(map[string]string, n)
		prev := ""
		for i := uint64(0); i < n && r.err == nil; i++ {
			k := r.string("metadata key")
			v := r.string("metadata value")
			if r.err == nil && (k == "" || (i > 0 && k <= prev)) {
				r.fail("metadata order")
			}
			prev = k
			e.Action.Metadata[k] = v
		}
	}
	if r.err == nil {
		if len(leaf)-r.off < 8 {
			r.fail("receivedAt")
		} else {
			e.ReceivedAt = int64(binary.BigEndian.Uint64(leaf[r.off:]))
			r.off += 8
		}
	}
	e.KeyID = r.string("keyId")
	if sig := r.bytes("signature"); r.err == nil {
		e.Signature = bytes.Clone(sig)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(leaf) {
		return nil, fmt.Errorf("%w: leaf: %d trailing bytes", ErrInvalid, len(leaf)-r.off)
	}
	// Leaves written before format 2 hold encrypted values as text: a
	// format-1 leaf is compared with its format-1 encoding.
	if !bytes.Equal(encodeLeaf(e, leaf[0] == LeafFormatV2), leaf) {
		return nil, fmt.Errorf("%w: leaf: not in canonical form", ErrInvalid)
	}
	return e, nil
}

// LeafID returns the event id of a leaf without decoding the rest.
func LeafID(leaf []byte) (string, error) {
	if len(leaf) == 0 || !IsLeafFormat(leaf[0]) {
		return "", fmt.Errorf("%w: leaf: unknown format", ErrInvalid)
	}
	r := &leafReader{b: leaf, off: 1}
	id := r.bytes("id")
	if r.err != nil {
		return "", r.err
	}
	return string(id), nil
}

// leafBody returns the signed part of a leaf: everything before the key id.
// The leaf must be canonical.
func leafBody(leaf []byte, e *Entry) []byte {
	sigLen := len(e.Signature)
	tail := uvarintLen(uint64(len(e.KeyID))) + len(e.KeyID) + uvarintLen(uint64(sigLen)) + sigLen
	return leaf[:len(leaf)-tail]
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
