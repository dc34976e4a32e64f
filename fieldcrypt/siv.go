package fieldcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// sivMAC is HMAC-SHA256 under one key (the v2 mac key), kept as the two
// SHA-256 states after the key's inner and outer pad blocks. A per-key
// pool of crypto/hmac values was emptied by every GC, so a key used less
// than once per GC cycle paid for a new HMAC (two pad blocks, four
// allocations) per value; these states are built once per data key (two
// 108-byte arrays, inside the key: no objects for the GC to mark) and
// computing a MAC takes two SHA-256 blocks for a field value of up to
// ~20 bytes more than its additional data, and no allocation.
type sivMAC struct {
	inner, outer [shaStateSize]byte // sha256 MarshalBinary states
}

// shaStateSize is the length of a marshalled SHA-256 state: magic,
// chaining values, a block of pending input and the length.
const shaStateSize = 4 + 32 + 64 + 8

// shaState is the per-call scratch of sivMAC.sum and ctrXOR: a SHA-256
// digest that can load a saved state, and buffers that would escape to
// the heap as arguments of interface methods.
type shaState struct {
	h   hash.Hash
	u   encoding.BinaryUnmarshaler
	msg []byte
	sum [sha256.Size]byte
	ctr [aes.BlockSize]byte
	ks  [aes.BlockSize]byte
}

var shaStates = sync.Pool{New: func() any {
	h := sha256.New()
	return &shaState{h: h, u: h.(encoding.BinaryUnmarshaler), msg: make([]byte, 0, 128)}
}}

func newSIVMAC(key []byte) sivMAC {
	var pad [sha256.BlockSize]byte
	state := func(x byte) (st [shaStateSize]byte) {
		copy(pad[:], key) // key is 32 bytes: no pre-hashing
		for i := range pad {
			pad[i] ^= x
		}
		h := sha256.New()
		h.Write(pad[:])
		b, err := h.(encoding.BinaryAppender).AppendBinary(st[:0])
		if err != nil || len(b) != shaStateSize {
			panic(fmt.Sprintf("fieldcrypt: sha256 state of %d bytes: %v", len(b), err)) // fixed by the sha256 package
		}
		clear(pad[:])
		return st
	}
	return sivMAC{inner: state(0x36), outer: state(0x5c)}
}

// siv is HMAC-SHA256(key, uvarint(len(ad)) || ad || value)[:16]: the v2
// synthetic IV (format.go).
func (m *sivMAC) siv(ad, value []byte) (out [sivSize]byte) {
	s := shaStates.Get().(*shaState)
	s.msg = binary.AppendUvarint(s.msg[:0], uint64(len(ad)))
	s.msg = append(s.msg, ad...)
	s.msg = append(s.msg, value...)
	if err := s.u.UnmarshalBinary(m.inner[:]); err != nil {
		panic(err)
	}
	s.h.Write(s.msg)
	inner := s.h.Sum(s.sum[:0])
	if err := s.u.UnmarshalBinary(m.outer[:]); err != nil {
		panic(err)
	}
	s.h.Write(inner)
	copy(out[:], s.h.Sum(s.sum[:0]))
	if cap(s.msg) <= 4096 {
		shaStates.Put(s)
	}
	return out
}

// ctrXOR is AES-CTR (cipher.NewCTR: the whole 16-byte block is a
// big-endian counter starting at iv) over the few blocks of a field
// value, without the allocations of a cipher.Stream.
func ctrXOR(b cipher.Block, iv *[sivSize]byte, dst, src []byte) {
	s := shaStates.Get().(*shaState)
	ctr, ks := &s.ctr, &s.ks
	*ctr = *iv
	for i := 0; i < len(src); i += aes.BlockSize {
		b.Encrypt(ks[:], ctr[:])
		n := min(aes.BlockSize, len(src)-i)
		subtle.XORBytes(dst[i:i+n], src[i:i+n], ks[:n])
		for j := aes.BlockSize - 1; j >= 0; j-- {
			ctr[j]++
			if ctr[j] != 0 {
				break
			}
		}
	}
	shaStates.Put(s)
}

// hkdf64 is crypto/hkdf.Key(sha256.New, secret, nil, info, 64) for a
// secret and info of at most 64 bytes each, without its allocations: a
// new subject's data key derives its v2 keys with it (openDataKey), and
// new subjects are ~2% of the bench workload's events.
func hkdf64(secret []byte, info string) (out [64]byte) {
	var zero [sha256.Size]byte
	prk := hmacSHA256(zero[:], secret) // extract, with the default salt
	var msg [sha256.Size + 64 + 1]byte
	t1 := hmacSHA256(prk[:], append(append(msg[:0], info...), 1))
	t2 := hmacSHA256(prk[:], append(append(append(msg[:0], t1[:]...), info...), 2))
	copy(out[:sha256.Size], t1[:])
	copy(out[sha256.Size:], t2[:])
	return out
}

// hmacSHA256 is HMAC-SHA256 for a key of at most 64 bytes and a message
// of at most 128.
func hmacSHA256(key, msg []byte) [sha256.Size]byte {
	var buf [sha256.BlockSize + 128]byte
	pad := func(x byte) {
		clear(buf[:sha256.BlockSize])
		copy(buf[:], key)
		for i := range sha256.BlockSize {
			buf[i] ^= x
		}
	}
	pad(0x36)
	n := copy(buf[sha256.BlockSize:], msg)
	inner := sha256.Sum256(buf[:sha256.BlockSize+n])
	pad(0x5c)
	copy(buf[sha256.BlockSize:], inner[:])
	sum := sha256.Sum256(buf[:sha256.BlockSize+sha256.Size])
	clear(buf[:])
	return sum
}
