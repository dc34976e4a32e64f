package query

import (
	"bytes"
	"encoding/binary"
	"math"
)

// Field is an indexed event field.
type Field uint8

// The indexed fields. Each has a posting list per value.
const (
	FieldActorID Field = iota
	FieldActorType
	FieldActorIP
	FieldActionType
	FieldResource
	FieldResourceID
	FieldResult
	FieldApplication
	FieldEnvironment
	FieldRequestID
	numFields
)

var fieldNames = [numFields]string{
	FieldActorID:     "actor.id",
	FieldActorType:   "actor.type",
	FieldActorIP:     "actor.ip",
	FieldActionType:  "action.type",
	FieldResource:    "action.resource",
	FieldResourceID:  "action.resourceId",
	FieldResult:      "action.result",
	FieldApplication: "context.application",
	FieldEnvironment: "context.environment",
	FieldRequestID:   "context.requestId",
}

// FieldByName returns the field with the JSON name ("actor.id").
func FieldByName(name string) (Field, bool) {
	for f, n := range fieldNames {
		if n == name {
			return Field(f), true
		}
	}
	return 0, false
}

// String is the field's name in the event's JSON spelling.
func (f Field) String() string {
	if f < numFields {
		return fieldNames[f]
	}
	return "field?"
}

// The query tables, all under the ledger's reserved "q/" prefix:
//
//	q/<tag>/<escaped value> 0x00 0x01 <first:8 BE>  → uvarint deltas    posting chunks, one tag per Field
//	q/<tag>/<bucket:1><first:8 BE>                  → (gap len value)*  bucket chunks (requestId, resourceId)
//	q/w/<ms:8><index:8 BE>                          → ""                receive-time marks (see marks.go)
//	q/z/<block:8 BE>                                → min:12 max:12     event-timestamp zone map
//	q/m/version                                     → "1"               index format; absent: not built
//	q/m/lag                                         → <ms:8>            receive-time disorder bound
//
// A posting chunk holds the indices at which one field had one value
// within one applied batch: the first in the key, the others as uvarint
// gaps in the value (empty for a single index), at most maxChunk per
// chunk. One key per distinct value per batch rather than per entry:
// keys are what an LSM write costs, and group commit puts many events of
// the same actor, result or environment in one batch. Chunks of a value
// never overlap (batches cover disjoint index ranges), so a list is
// ordered by its keys.
//
// Two fields are nearly unique per event: context.requestId and
// action.resourceId. An exact posting list would cost them a key per
// event each, as much as the eight other fields together. Their values
// go instead into one of 64 buckets (FNV-1a of the value), and a chunk
// holds a batch's entries of one bucket with their values (uvarint index
// gap from the previous entry, 0 for the first; uvarint length; bytes).
// A lookup reads its bucket's chunks in the index range and keeps the
// entries whose value matches exactly: one chunk per batch rather than
// one key per match, which is cheap over a time range and grows with the
// log without one.
//
// The zone map keeps, per block of 2^zoneShift indices, the least and
// greatest event timestamp (seconds:8 nanos:4, sign-flipped) of the
// block's entries that have one; blocks without any have no row.
// Client clocks are not the log's order, so an event-time range is
// answered in index order by skipping the blocks whose zone misses it
// and checking the others' timestamps (what PostgreSQL calls a BRIN
// index).
//
// Signed integers are stored with the sign bit flipped so that byte order
// is numeric order. Values escape 0x00 as 0x00 0xff and end with 0x00
// 0x01, so no value's key range contains another's and values sort as
// their bytes do. Empty values are not indexed: a filter on "" means
// "any".
var fieldTags = [numFields]byte{
	FieldActorID:     'a',
	FieldActorType:   't',
	FieldActorIP:     'p',
	FieldActionType:  'y',
	FieldResource:    'r',
	FieldResourceID:  'd',
	FieldResult:      'o',
	FieldApplication: 'n',
	FieldEnvironment: 'v',
	FieldRequestID:   'k',
}

const (
	tagMarks = 'w'
	tagZones = 'z'
)

// maxChunk bounds the indices in one posting or bucket chunk.
const maxChunk = 512

// bucketBits sets the number of buckets of a bucketed field.
const bucketBits = 6

// bucketed reports whether f is indexed by hash bucket.
func bucketed(f Field) bool { return f == FieldRequestID || f == FieldResourceID }

// bucketOf is value's bucket: FNV-1a, 32 bits, low bucketBits.
func bucketOf(value []byte) byte {
	h := uint32(2166136261)
	for _, c := range value {
		h ^= uint32(c)
		h *= 16777619
	}
	return byte(h & (1<<bucketBits - 1))
}

// zoneShift sets the zone-map block size: 1024 indices.
const zoneShift = 10

var (
	keyVersion = []byte("q/m/version")
	keyLag     = []byte("q/m/lag")
)

// indexFormat is the version of the layout above. A store without it (or
// with another) has its query tables rebuilt when the Index attaches.
const indexFormat = "1"

// tablePrefix is "q/<tag>/".
func tablePrefix(tag byte) []byte { return []byte{'q', '/', tag, '/'} }

// appendPostingPrefix appends the prefix of value's posting list.
func appendPostingPrefix(dst []byte, f Field, value []byte) []byte {
	dst = append(dst, 'q', '/', fieldTags[f], '/')
	for {
		i := bytes.IndexByte(value, 0)
		if i < 0 {
			break
		}
		dst = append(dst, value[:i+1]...)
		dst = append(dst, 0xff)
		value = value[i+1:]
	}
	dst = append(dst, value...)
	return append(dst, 0x00, 0x01)
}

// postingPrefix is the key prefix of value's chunks: its posting list,
// or its bucket for a bucketed field.
func postingPrefix(f Field, value string) []byte {
	if bucketed(f) {
		return []byte{'q', '/', fieldTags[f], '/', bucketOf([]byte(value))}
	}
	return appendPostingPrefix(nil, f, []byte(value))
}

// flip maps int64 to uint64 preserving order.
func flip(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func unflip(u uint64) int64 { return int64(u ^ (1 << 63)) }

func zoneKey(block uint64) []byte {
	return binary.BigEndian.AppendUint64(tablePrefix(tagZones), block)
}

// tsVal is an event timestamp.
type tsVal struct {
	sec  int64
	nsec int32
}

func (a tsVal) less(b tsVal) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

func appendTS(dst []byte, t tsVal) []byte {
	dst = binary.BigEndian.AppendUint64(dst, flip(t.sec))
	return binary.BigEndian.AppendUint32(dst, uint32(t.nsec))
}

func decodeTS(b []byte) tsVal {
	return tsVal{unflip(binary.BigEndian.Uint64(b)), int32(binary.BigEndian.Uint32(b[8:]))}
}

// zone is the timestamp range of one block.
type zone struct{ min, max tsVal }

func encodeZone(z zone) []byte { return appendTS(appendTS(make([]byte, 0, 24), z.min), z.max) }

func decodeZone(b []byte) (zone, bool) {
	if len(b) != 24 {
		return zone{}, false
	}
	return zone{decodeTS(b), decodeTS(b[12:])}, true
}

func markKey(ms int64, index uint64) []byte { return appendMarkKey(nil, ms, index) }

func appendMarkKey(dst []byte, ms int64, index uint64) []byte {
	dst = append(dst, 'q', '/', tagMarks, '/')
	dst = binary.BigEndian.AppendUint64(dst, flip(ms))
	return binary.BigEndian.AppendUint64(dst, index)
}

const markKeyLen = 4 + 8 + 8

func decodeMark(k []byte) (ms int64, index uint64, ok bool) {
	if len(k) != markKeyLen {
		return 0, 0, false
	}
	return unflip(binary.BigEndian.Uint64(k[4:])), binary.BigEndian.Uint64(k[12:]), true
}

// prefixEnd is the least key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// floorDiv is a/b rounded toward minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

const (
	minInt64 = math.MinInt64
	maxInt64 = math.MaxInt64
)
