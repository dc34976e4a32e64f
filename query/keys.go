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

// String is the field's name in the event's JSON spelling.
func (f Field) String() string {
	if f < numFields {
		return fieldNames[f]
	}
	return "field?"
}

// The query tables, all under the ledger's reserved "q/" prefix:
//
//	q/<tag>/<escaped value> 0x00 0x01 <index:8 BE>   → ""   posting lists, one tag per Field
//	q/s/<seconds:8><nanos:4><index:8 BE>             → ""   event timestamp
//	q/w/<ms:8><index:8 BE>                           → ""   receive-time marks (see timemarks.go)
//	q/m/version                                      → "1"  index format; absent: not built
//	q/m/lag                                          → <ms:8>  receive-time disorder bound
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
	tagTimestamp = 's'
	tagMarks     = 'w'
)

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

func postingPrefix(f Field, value string) []byte {
	return appendPostingPrefix(nil, f, []byte(value))
}

// flip maps int64 to uint64 preserving order.
func flip(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func unflip(u uint64) int64 { return int64(u ^ (1 << 63)) }

// appendTimestampKey appends q/s/<seconds><nanos><index>.
func appendTimestampKey(dst []byte, sec int64, nsec int32, index uint64) []byte {
	dst = append(dst, tablePrefix(tagTimestamp)...)
	dst = binary.BigEndian.AppendUint64(dst, flip(sec))
	dst = binary.BigEndian.AppendUint32(dst, uint32(nsec))
	return binary.BigEndian.AppendUint64(dst, index)
}

// timestampKeyLen is the length of a q/s/ key.
const timestampKeyLen = 4 + 8 + 4 + 8

func markKey(ms int64, index uint64) []byte {
	k := tablePrefix(tagMarks)
	k = binary.BigEndian.AppendUint64(k, flip(ms))
	return binary.BigEndian.AppendUint64(k, index)
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
