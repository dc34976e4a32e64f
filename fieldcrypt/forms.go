package fieldcrypt

import (
	"sync"

	"github.com/auditledger/ledgerd/internal/sealed"
)

// formCache remembers the stored forms of searchable values under one
// data key: the last formsPerField values of each event field (a
// subject's actor id is the same in all its events, its ip and user
// agent rarely change; a field whose values keep changing, like a
// session id, is not cached at all: formuse.go). All of a key's entries
// are one string, so one object for the GC to mark whatever the number
// of fields (one string per entry made the cached keys ~6 objects each,
// and marking them was most of encryption's GC cost). Entries, newest
// first:
//
//	field index (1 byte) || keyless (0 or 1) || len(value) (2 bytes) || len(form) (2 bytes) || value || form
//
// (lengths little-endian; longer values are not cached).
// Transform reads the string once per event and writes it at most once
// per event (formBatch); the lock is held for copying a string header.
// Two batches that add forms to one key at the same instant may lose one
// of their additions: a cache miss later, nothing more.
type formCache struct {
	mu sync.Mutex
	s  string
}

const formsPerField = 2

func (f *formCache) load() string {
	f.mu.Lock()
	s := f.s
	f.mu.Unlock()
	return s
}

func (f *formCache) store(s string) {
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
}

// formEntry is one parsed entry of a formCache string.
type formEntry struct {
	fi          int
	keyless     bool
	value, form string
	start, end  int // the entry's bytes in the string
}

// formHead is the size of an entry's fixed head; values and forms of
// more than maxFormPart bytes are not cached.
const (
	formHead      = 6
	maxFormPart   = 1<<16 - 1
	maxV2Overhead = 1 + sealed.IDBytes + sivSize // a v2 form's bytes beyond its value's
)

// nextFormEntry parses the entry of s at offset at; ok is false at the
// end of s or at a malformed entry (which cannot be written).
func nextFormEntry(s string, at int) (e formEntry, ok bool) {
	if len(s)-at < formHead {
		return e, false
	}
	h := s[at : at+formHead]
	vn, fn := int(h[2])|int(h[3])<<8, int(h[4])|int(h[5])<<8
	i := at + formHead
	if len(s)-i < vn+fn {
		return e, false
	}
	return formEntry{fi: int(h[0]), keyless: h[1] == 1, value: s[i : i+vn], form: s[i+vn : i+vn+fn], start: at, end: i + vn + fn}, true
}

// lookupForm returns the form of value in field fi, keyless or not,
// cached in s.
func lookupForm(s string, fi int, value string, keyless bool) (string, bool) {
	for at := 0; ; {
		e, ok := nextFormEntry(s, at)
		if !ok {
			return "", false
		}
		if e.fi == fi && e.keyless == keyless && e.value == value {
			return e.form, true
		}
		at = e.end
	}
}

// appendFormEntry appends the entry of value's v2 form under dk in field
// fi (ad: its additional data), and returns the buffer and the form's
// offsets in it; ok is false, and dst unchanged, when the value or the
// form is too long to cache.
func appendFormEntry(dst []byte, dk *dataKey, fi int, ad []byte, value string, keyless bool) (_ []byte, start, end int, ok bool) {
	if len(value)+maxV2Overhead > maxFormPart {
		return dst, 0, 0, false
	}
	flag := byte(0)
	if keyless {
		flag = 1
	}
	at := len(dst)
	dst = append(dst, byte(fi), flag, byte(len(value)), byte(len(value)>>8), 0, 0)
	dst = append(dst, value...)
	start = len(dst)
	dst = dk.appendV2(dst, ad, value, keyless)
	n := len(dst) - start
	dst[at+4], dst[at+5] = byte(n), byte(n>>8)
	return dst, start, len(dst), true
}

// formBatch collects the forms Transform makes for one event's data key,
// to cache them with one write when the event is done.
type formBatch struct {
	dk     *dataKey
	cached string // dk's cache when the event began
	loaded bool
	buf    []byte // the new entries
	pend   []pendingForm
	count  [numEncryptable]int8
}

// pendingForm is a form in formBatch.buf for the event field at p.
type pendingForm struct {
	p          *string
	start, end int
}

// begin starts an event under dk (nil: no data key).
func (b *formBatch) begin(dk *dataKey) {
	b.dk, b.cached, b.loaded = dk, "", false
	b.buf, b.pend = b.buf[:0], b.pend[:0]
	clear(b.count[:])
}

// get returns the cached form of value in field fi.
func (b *formBatch) get(fi int, value string, keyless bool) (string, bool) {
	if !b.loaded {
		b.cached, b.loaded = b.dk.forms.load(), true
	}
	return lookupForm(b.cached, fi, value, keyless)
}

// add makes the v2 form of value in field fi (ad: its additional data),
// to be cached and assigned to *p by flush; or assigns it now when it is
// too long to cache.
func (b *formBatch) add(p *string, fi int, ad []byte, value string, keyless bool) {
	buf, start, end, ok := appendFormEntry(b.buf, b.dk, fi, ad, value, keyless)
	if !ok {
		*p = string(b.dk.appendV2(nil, ad, value, keyless))
		return
	}
	b.buf = buf
	b.pend = append(b.pend, pendingForm{p: p, start: start, end: end})
	b.count[fi]++
}

// flush caches the event's new forms in front of the entries it keeps
// (the newest formsPerField of each field) and sets their fields.
func (b *formBatch) flush() {
	if len(b.pend) == 0 {
		return
	}
	if !b.loaded {
		b.cached, b.loaded = b.dk.forms.load(), true
	}
	n := len(b.buf)
	for at := 0; ; {
		e, ok := nextFormEntry(b.cached, at)
		if !ok {
			break
		}
		if e.fi < numEncryptable && b.count[e.fi] < formsPerField {
			b.count[e.fi]++
			b.buf = append(b.buf, b.cached[e.start:e.end]...)
		}
		at = e.end
	}
	s := string(b.buf)
	b.buf = b.buf[:n]
	for _, p := range b.pend {
		*p.p = s[p.start:p.end]
	}
	b.dk.forms.store(s)
	b.dk = nil
}
