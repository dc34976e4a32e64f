package fieldcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/auditledger/ledgerd/internal/sealed"
)

// The reserved table s/ holds, replicated through the ledger's
// Committer so that every node has the same bytes:
//
//	s/f/<fieldKeyId>             → field key wrapped by a master key
//	s/d/<dataKeyId>              → per-subject data key wrapped by a field key
//	s/k/<lookup>/<dataKeyId>     → "" (which data keys belong to a subject)
//	s/e/<dataKeyId>              → erasure record (JSON), once the data key is destroyed
//	s/g                          → generation: random bytes rewritten by every
//	                               rotation and erasure (nodes flush key caches)
//
// Field key ids are "f" + 16 hex digits of the creation time (Unix
// nanoseconds) + 8 random hex digits, so the newest key sorts last and
// is the current one. Data key ids are "d" + 12 random bytes in base64url: they
// say nothing about the subject. lookup is
// hex(HMAC-SHA256(HKDF(field key, "ledgerd subject lookup"), subject)[:16]):
// only a holder of the master key can tell which subject a data key
// serves, and after an erasure nothing links the subject to anything.
var (
	prefixFieldKey = []byte("s/f/")
	prefixDataKey  = []byte("s/d/")
	prefixSubject  = []byte("s/k/")
	prefixErased   = []byte("s/e/")
	keyGeneration  = []byte("s/g")
)

func slot(prefix []byte, id string) []byte {
	k := make([]byte, 0, len(prefix)+len(id))
	return append(append(k, prefix...), id...)
}

// fieldKey is a field key: it encrypts fields of events without a
// subject, wraps data keys, and keys subject lookups.
type fieldKey struct {
	aesKey
	created   time.Time
	wrappedBy string
	lookup    []byte    // nil when the key could not be unwrapped
	lookups   sync.Pool // of hash.Hash: HMAC-SHA256 keyed with lookup
}

func newFieldKeyID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	rand.Read(b[8:])
	return "f" + hex.EncodeToString(b[:])
}

func newDataKeyID() string {
	var b [12]byte
	rand.Read(b[:])
	return "d" + base64.RawURLEncoding.EncodeToString(b[:])
}

func fieldKeyTime(id string) time.Time {
	b, err := hex.DecodeString(id[1:17])
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

func openFieldKey(id string, raw []byte, wrappedBy string) (*fieldKey, error) {
	ak, err := newAESKey(id, raw)
	if err != nil {
		return nil, err
	}
	lk, err := hkdf.Key(sha256.New, raw, nil, "ledgerd subject lookup", 32)
	if err != nil {
		return nil, err
	}
	fk := &fieldKey{aesKey: *ak, created: fieldKeyTime(id), wrappedBy: wrappedBy, lookup: lk}
	fk.lookups.New = func() any { return hmac.New(sha256.New, lk) }
	return fk, nil
}

// subjectLookup is the index component for subject under this key.
func (f *fieldKey) subjectLookup(subject string) string {
	l := f.subjectLookupRaw(subject)
	return hex.EncodeToString(l[:])
}

// subjectLookupRaw is subjectLookup before hex encoding.
func (f *fieldKey) subjectLookupRaw(subject string) (out [16]byte) {
	m := f.lookups.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(subject))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	f.lookups.Put(m)
	copy(out[:], sum[:16])
	return out
}

func subjectPrefix(lookup string) []byte {
	k := make([]byte, 0, len(prefixSubject)+len(lookup)+1)
	k = append(k, prefixSubject...)
	k = append(k, lookup...)
	return append(k, '/')
}

// dataKey is a per-subject data key. Thousands stay cached, and the GC
// scans each of them, and marks every object it points to, in every
// cycle: with encryption on, the key caches made GC marking cost ~2.8
// times as much per event as without. So a key is four objects (itself,
// its id, its AES block and the string of its cached forms), its pointer
// fields come first (the GC scans an object only up to its last
// pointer: here the first 80 of ~500 bytes), and key material and HMAC
// states are arrays after them; the v1 nonce key is derived when used
// (only StoredForms needs it).
type dataKey struct {
	id    string
	v2enc cipher.Block
	// AES-256-GCM of v1 values and of non-searchable fields: made on
	// first use (most keys only seal v2 values; a GCM is ~600 bytes).
	gcm     cipher.AEAD
	forms   formCache
	gcmOnce sync.Once
	bid     [sealed.IDBytes]byte // id in binary, for v2 values in binary
	raw     [32]byte
	// v2 (format.go): the enc and mac keys derived from raw (kept so
	// that the second tier reopens a key without the derivation: two
	// thirds of the ~2 µs), the CTR cipher above and the mac key's HMAC
	// states.
	v2    [64]byte
	v2mac sivMAC
}

func openDataKey(id string, raw []byte) (*dataKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("fieldcrypt: key is %d bytes; AES-256 needs 32", len(raw))
	}
	d := &dataKey{id: id}
	copy(d.raw[:], raw)
	d.v2 = hkdf64(raw, "ledgerd searchable v2")
	return d, d.init()
}

// init makes d's v2 ciphers from d.v2, and d.bid from d.id.
func (d *dataKey) init() error {
	bid, ok := dataKeyIDBytes(d.id)
	if !ok {
		return fmt.Errorf("fieldcrypt: malformed data key id %q", d.id)
	}
	d.bid = bid
	d.v2mac = newSIVMAC(d.v2[32:])
	enc, err := aes.NewCipher(d.v2[:32])
	if err != nil {
		return err
	}
	d.v2enc = enc
	return nil
}

// aead is the key's AES-256-GCM.
func (d *dataKey) aead() cipher.AEAD {
	d.gcmOnce.Do(func() {
		ak, err := newAESKey(d.id, d.raw[:])
		if err != nil {
			panic(err) // raw is 32 bytes
		}
		d.gcm = ak.aead
	})
	return d.gcm
}

// sealV2 appends siv || AES-CTR(value) to dst.
func (d *dataKey) sealV2(dst, ad []byte, value string) []byte {
	n := len(dst) + sivSize
	dst = append(append(dst, make([]byte, sivSize)...), value...)
	siv := d.v2mac.siv(ad, dst[n:])
	copy(dst[n-sivSize:], siv[:])
	ctrXOR(d.v2enc, &siv, dst[n:], dst[n:])
	return dst
}

// openV2 decrypts a v2 payload (siv || ciphertext) and checks its siv.
func (d *dataKey) openV2(ad, payload []byte) ([]byte, bool) {
	if len(payload) < sivSize {
		return nil, false
	}
	pt := make([]byte, len(payload)-sivSize)
	ctrXOR(d.v2enc, (*[sivSize]byte)(payload[:sivSize]), pt, payload[sivSize:])
	siv := d.v2mac.siv(ad, pt)
	if !hmac.Equal(siv[:], payload[:sivSize]) {
		return nil, false
	}
	return pt, true
}

// detNonce derives the v1 nonce of a searchable field from its value
// (StoredForms, for events written before v2).
func (d *dataKey) detNonce(dst []byte, field, value string) []byte {
	sk, _ := hkdf.Key(sha256.New, d.raw[:], nil, "ledgerd searchable nonce", 32)
	h := hmac.New(sha256.New, sk)
	h.Write([]byte(field))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return append(dst, h.Sum(nil)[:nonceSize]...)
}

// sealWith encrypts value for field under key k (with nonce n) and
// returns the stored form.
func sealWith(a cipher.AEAD, class, keyID, field, value string, nonce []byte) string {
	var s sealer
	return s.seal(a, class, keyID, aad(class, field), value, nonce)
}

// sealV2 returns the v2 value of value under dk in binary
// (internal/sealed), naming dk unless keyless: the form the ledger
// stores in leaves, which it takes as it is (no base64 either way).
func (s *sealer) sealV2(dk *dataKey, ad []byte, value string, keyless bool) string {
	s.out = dk.appendV2(s.out[:0], ad, value, keyless)
	return string(s.out)
}

// appendV2 appends the v2 value of value in binary to dst.
func (d *dataKey) appendV2(dst, ad []byte, value string, keyless bool) []byte {
	var id []byte
	if !keyless {
		id = d.bid[:]
	}
	return d.sealV2(sealed.AppendBinary(dst, id, nil), ad, value)
}

// sealer builds stored forms, reusing its scratch buffers across calls.
type sealer struct {
	payload, out []byte
}

var b64 = base64.RawURLEncoding.Strict()

func (s *sealer) seal(a cipher.AEAD, class, keyID string, ad []byte, value string, nonce []byte) string {
	s.payload = append(s.payload[:0], nonce...)
	s.payload = a.Seal(s.payload, nonce, []byte(value), ad)
	n := base64.RawURLEncoding.EncodedLen(len(s.payload))
	s.out = append(s.out[:0], class...)
	s.out = append(s.out, ":v1:"...)
	s.out = append(s.out, keyID...)
	s.out = append(s.out, ':')
	s.out = slices.Grow(s.out, n)[:len(s.out)+n]
	base64.RawURLEncoding.Encode(s.out[len(s.out)-n:], s.payload)
	return string(s.out)
}

// nonces hands out fresh random nonces, reading the system's random
// source in chunks.
type nonces struct {
	buf []byte
}

func (n *nonces) next() []byte {
	if len(n.buf) < nonceSize {
		n.buf = make([]byte, 64*nonceSize)
		if _, err := rand.Read(n.buf); err != nil {
			panic(fmt.Sprintf("fieldcrypt: random source: %v", err))
		}
	}
	v := n.buf[:nonceSize:nonceSize]
	n.buf = n.buf[nonceSize:]
	return v
}
