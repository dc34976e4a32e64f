package query

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"github.com/auditledger/ledgerd/ledger"
)

// Cursors are opaque to clients and tamper-evident: the position and the
// query they belong to, with an HMAC-SHA256 tag (truncated to 16 bytes)
// under a key derived from the cluster's shared HMAC key, so that every
// node accepts every other node's cursors and nobody can forge one.
//
//	payload = version:1 | flags:1 | filter hash:8 | page:4 | last index:8
//	cursor  = base64url(payload | tag:16)
const (
	cursorVersion = 1
	cursorTagLen  = 16
	flagDesc      = 1 << 0
)

type cursor struct {
	desc       bool
	filterHash uint64
	page       uint32
	pos        []byte
}

// deriveCursorKey turns the shared HMAC key material into the cursor key.
func deriveCursorKey(material []byte) []byte {
	m := hmac.New(sha256.New, material)
	m.Write([]byte("ledgerd query cursor v1"))
	return m.Sum(nil)
}

func (e *Engine) sealCursor(c cursor) string {
	b := make([]byte, 0, 14+len(c.pos)+cursorTagLen)
	b = append(b, cursorVersion, 0)
	if c.desc {
		b[1] |= flagDesc
	}
	b = binary.BigEndian.AppendUint64(b, c.filterHash)
	b = binary.BigEndian.AppendUint32(b, c.page)
	b = append(b, c.pos...)
	m := hmac.New(sha256.New, e.cursorKey)
	m.Write(b)
	b = m.Sum(b)[:len(b)+cursorTagLen]
	return base64.RawURLEncoding.EncodeToString(b)
}

var errCursor = &ledger.FieldError{Field: "cursor", Reason: "not a cursor this server issued for this query"}

func (e *Engine) openCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 14+cursorTagLen {
		return cursor{}, errCursor
	}
	body, tag := b[:len(b)-cursorTagLen], b[len(b)-cursorTagLen:]
	m := hmac.New(sha256.New, e.cursorKey)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:cursorTagLen], tag) || body[0] != cursorVersion {
		return cursor{}, errCursor
	}
	c := cursor{
		desc:       body[1]&flagDesc != 0,
		filterHash: binary.BigEndian.Uint64(body[2:]),
		page:       binary.BigEndian.Uint32(body[10:]),
		pos:        body[14:],
	}
	if len(c.pos) != 8 {
		return cursor{}, errCursor
	}
	return c, nil
}
