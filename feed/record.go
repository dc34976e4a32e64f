package feed

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Record is the JSON form of an entry that every sink sends: the event in
// the audit service's field names, plus what lets a receiver check it —
// the ledger index (the idempotency key), the RFC 6962 leaf hash and the
// HMAC signature, hex-encoded. With the leaf bytes (Leaf, base64, when a
// sink is configured to include them) a receiver can recompute the leaf
// hash and ask the ledger for an inclusion proof.
type Record struct {
	Index      uint64        `json:"index"`
	ID         string        `json:"id"`
	Timestamp  string        `json:"timestamp,omitempty"`
	Actor      RecordActor   `json:"actor"`
	Action     RecordAction  `json:"action"`
	Context    RecordContext `json:"context"`
	Version    string        `json:"version,omitempty"`
	ReceivedAt string        `json:"receivedAt"`
	LeafHash   string        `json:"leafHash"`
	KeyID      string        `json:"keyId"`
	Signature  string        `json:"signature"`
	Leaf       string        `json:"leaf,omitempty"`
}

// RecordActor is Record.Actor.
type RecordActor struct {
	ID        string `json:"id"`
	Type      string `json:"type,omitempty"`
	IP        string `json:"ip,omitempty"`
	Session   string `json:"session,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// RecordAction is Record.Action.
type RecordAction struct {
	Type       string            `json:"type"`
	Resource   string            `json:"resource"`
	ResourceID string            `json:"resourceId,omitempty"`
	Result     string            `json:"result"`
	Duration   int64             `json:"duration,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// RecordContext is Record.Context.
type RecordContext struct {
	RequestID   string `json:"requestId,omitempty"`
	Environment string `json:"environment,omitempty"`
	Application string `json:"application,omitempty"`
	Version     string `json:"version,omitempty"`
}

// NewRecord builds the record of it; withLeaf adds the leaf bytes.
func NewRecord(it *Item, withLeaf bool) Record {
	e := it.Entry
	r := Record{
		Index:     it.Index,
		ID:        e.ID,
		Timestamp: e.Timestamp,
		Actor:     RecordActor{ID: e.Actor.ID, Type: e.Actor.Type, IP: e.Actor.IP, Session: e.Actor.Session, UserAgent: e.Actor.UserAgent},
		Action: RecordAction{Type: e.Action.Type, Resource: e.Action.Resource, ResourceID: e.Action.ResourceID,
			Result: e.Action.Result, Duration: e.Action.Duration, Metadata: e.Action.Metadata},
		Context:    RecordContext{RequestID: e.Context.RequestID, Environment: e.Context.Environment, Application: e.Context.Application, Version: e.Context.Version},
		Version:    e.Version,
		ReceivedAt: e.ReceivedTime().Format(time.RFC3339Nano),
		LeafHash:   hex.EncodeToString(it.LeafHash[:]),
		KeyID:      e.KeyID,
		Signature:  hex.EncodeToString(e.Signature),
	}
	if withLeaf {
		r.Leaf = base64.StdEncoding.EncodeToString(it.Leaf)
	}
	return r
}

// MarshalRecord returns the JSON of NewRecord(it, withLeaf): the same
// document json.Marshal gives, written directly (it is the feed's
// hottest path: every sink encodes every entry).
func MarshalRecord(it *Item, withLeaf bool) []byte {
	return AppendRecord(make([]byte, 0, recordSizeHint(it, withLeaf)), it, withLeaf)
}

// recordSizeHint is a generous estimate of the JSON size of it's record:
// the leaf holds every string once, the record adds field names, hex and
// escapes.
func recordSizeHint(it *Item, withLeaf bool) int {
	n := 384 + len(it.Leaf)*3/2
	if withLeaf {
		n += len(it.Leaf) * 4 / 3
	}
	return n
}

// encodeBatch sets the cached JSON of every item of batch, all written
// into a few shared buffers rather than one allocation per item.
func encodeBatch(batch []*Item, withLeaf bool) {
	var buf []byte
	for _, it := range batch {
		if it.json != nil && it.jsonLeaf == withLeaf {
			continue
		}
		if hint := recordSizeHint(it, withLeaf); cap(buf)-len(buf) < hint {
			buf = make([]byte, 0, max(64<<10, hint))
		}
		start := len(buf)
		buf = AppendRecord(buf, it, withLeaf)
		// A full three-index slice: no append to one item's JSON can
		// overwrite the next.
		it.json, it.jsonLeaf = buf[start:len(buf):len(buf)], withLeaf
	}
}

// AppendRecord appends the JSON of NewRecord(it, withLeaf) to b.
func AppendRecord(b []byte, it *Item, withLeaf bool) []byte {
	e := it.Entry
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, it.Index, 10)
	b = appendField(b, "id", e.ID, false)
	b = appendField(b, "timestamp", e.Timestamp, true)
	b = append(b, `,"actor":{`...)
	b = appendKV(b, "id", e.Actor.ID)
	b = appendField(b, "type", e.Actor.Type, true)
	b = appendField(b, "ip", e.Actor.IP, true)
	b = appendField(b, "session", e.Actor.Session, true)
	b = appendField(b, "userAgent", e.Actor.UserAgent, true)
	b = append(b, `},"action":{`...)
	b = appendKV(b, "type", e.Action.Type)
	b = appendField(b, "resource", e.Action.Resource, false)
	b = appendField(b, "resourceId", e.Action.ResourceID, true)
	b = appendField(b, "result", e.Action.Result, false)
	if e.Action.Duration != 0 {
		b = append(b, `,"duration":`...)
		b = strconv.AppendInt(b, e.Action.Duration, 10)
	}
	if len(e.Action.Metadata) > 0 {
		var small [8]string // most events have a few keys: no allocation
		keys := small[:0]
		for k := range e.Action.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"metadata":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendKV(b, k, e.Action.Metadata[k])
		}
		b = append(b, '}')
	}
	b = append(b, `},"context":{`...)
	first := len(b)
	for _, f := range [...]struct{ k, v string }{
		{"requestId", e.Context.RequestID}, {"environment", e.Context.Environment},
		{"application", e.Context.Application}, {"version", e.Context.Version},
	} {
		if f.v == "" {
			continue
		}
		if len(b) > first {
			b = append(b, ',')
		}
		b = appendKV(b, f.k, f.v)
	}
	b = append(b, '}')
	b = appendField(b, "version", e.Version, true)
	b = append(b, `,"receivedAt":"`...)
	b = e.ReceivedTime().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","leafHash":"`...)
	b = hex.AppendEncode(b, it.LeafHash[:])
	b = append(b, '"')
	b = appendField(b, "keyId", e.KeyID, false)
	b = append(b, `,"signature":"`...)
	b = hex.AppendEncode(b, e.Signature)
	b = append(b, '"')
	if withLeaf {
		b = append(b, `,"leaf":"`...)
		b = base64.StdEncoding.AppendEncode(b, it.Leaf)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendField appends ,"key":"value" (nothing when omitEmpty and value
// is empty).
func appendField(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	return appendKV(append(b, ','), key, value)
}

// appendKV appends "key":"value".
func appendKV(b []byte, key, value string) []byte {
	b = appendJSONString(b, key)
	b = append(b, ':')
	return appendJSONString(b, value)
}

// jsonPlain[c] reports whether ASCII byte c stands for itself in a JSON
// string as encoding/json writes it.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does (HTML characters and U+2028/U+2029 included). s is valid UTF-8:
// the ledger accepts nothing else.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' || r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
