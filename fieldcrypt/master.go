package fieldcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// MasterKeys are the AES-256 key-encryption keys: the current one wraps
// new field keys; old ones still unwrap (master key rotation). A master
// key never encrypts event data itself.
type MasterKeys struct {
	current *aesKey
	byID    map[string]*aesKey
}

type aesKey struct {
	id   string
	aead cipher.AEAD
}

func newAESKey(id string, key []byte) (*aesKey, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("fieldcrypt: key is %d bytes; AES-256 needs 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &aesKey{id: id, aead: g}, nil
}

// MasterKeyID names a master key without revealing it: "m" and the
// first 6 bytes of SHA-256("ledgerd master key id\x00" || key) in hex.
func MasterKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("ledgerd master key id\x00"))
	h.Write(key)
	return "m" + hex.EncodeToString(h.Sum(nil)[:6])
}

// ParseMasterKey decodes a master key written as 64 hex digits (the
// seed's AUDIT_ENCRYPTION_KEY format); surrounding space is ignored.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 64 {
		return nil, fmt.Errorf("fieldcrypt: encryption key must be 64 hex digits (32 bytes), got %d characters", len(s))
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("fieldcrypt: encryption key must be 64 hex digits")
	}
	return k, nil
}

// NewMasterKeys returns the keyring wrapping with current and unwrapping
// with current and old.
func NewMasterKeys(current []byte, old ...[]byte) (*MasterKeys, error) {
	m := &MasterKeys{byID: make(map[string]*aesKey)}
	for i, k := range append([][]byte{current}, old...) {
		ak, err := newAESKey(MasterKeyID(k), k)
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: master key %d: %w", i, err)
		}
		if i == 0 {
			m.current = ak
		}
		m.byID[ak.id] = ak
	}
	return m, nil
}

// CurrentID is the id of the wrapping key.
func (m *MasterKeys) CurrentID() string { return m.current.id }

// LoadMasterKeys finds the master key: env AUDIT_ENCRYPTION_KEY, else
// keyFile, else defaultFile, which is generated (mode 0600) when missing
// and generate is true. Old keys come from oldFiles. created is the path
// of a generated key, or "".
func LoadMasterKeys(keyFile, defaultFile string, oldFiles []string, generate bool) (m *MasterKeys, created string, err error) {
	var cur []byte
	if v := os.Getenv("AUDIT_ENCRYPTION_KEY"); v != "" {
		if cur, err = ParseMasterKey(v); err != nil {
			return nil, "", fmt.Errorf("AUDIT_ENCRYPTION_KEY: %w", err)
		}
	} else {
		path := keyFile
		if path == "" {
			path = defaultFile
		}
		b, rerr := os.ReadFile(path)
		switch {
		case rerr == nil:
			if cur, err = ParseMasterKey(string(b)); err != nil {
				return nil, "", fmt.Errorf("%s: %w", path, err)
			}
		case errors.Is(rerr, fs.ErrNotExist) && keyFile == "" && generate:
			cur = make([]byte, 32)
			rand.Read(cur)
			if err := writeSecret(path, []byte(hex.EncodeToString(cur)+"\n")); err != nil {
				return nil, "", err
			}
			created = path
		default:
			return nil, "", fmt.Errorf("fieldcrypt: encryption key: %w", rerr)
		}
	}
	var old [][]byte
	for _, p := range oldFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("fieldcrypt: old encryption key: %w", err)
		}
		k, err := ParseMasterKey(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		old = append(old, k)
	}
	m, err = NewMasterKeys(cur, old...)
	return m, created, err
}

func writeSecret(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fieldcrypt: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("fieldcrypt: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fieldcrypt: sync %s: %w", path, err)
	}
	return f.Close()
}

// A wrapped key, as stored in the reserved table:
//
//	uvarint(len(wrapperId)) wrapperId nonce[12] AES-256-GCM(wrapper, key, aad = storage key)
//
// The storage key as additional data ties the blob to its slot.
func wrap(w *aesKey, key, slot []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(w.id)))
	out = append(out, w.id...)
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	out = append(out, nonce...)
	return w.aead.Seal(out, nonce, key, slot)
}

// unwrapWith parses a wrapped blob and opens it with the key lookup
// returns for its wrapper id.
func unwrapWith(blob, slot []byte, lookup func(id string) *aesKey) (key []byte, wrapperID string, err error) {
	n, l := binary.Uvarint(blob)
	if l <= 0 || n > 64 || uint64(len(blob)-l) < n+nonceSize+tagSize {
		return nil, "", fmt.Errorf("fieldcrypt: wrapped key %q is malformed", slot)
	}
	wrapperID = string(blob[l : l+int(n)])
	rest := blob[l+int(n):]
	w := lookup(wrapperID)
	if w == nil {
		return nil, wrapperID, fmt.Errorf("%w: %q is wrapped by key %s, which is not configured", ErrWrongKey, slot, wrapperID)
	}
	key, err = w.aead.Open(nil, rest[:nonceSize], rest[nonceSize:], slot)
	if err != nil {
		return nil, wrapperID, fmt.Errorf("%w: %q does not open with key %s", ErrWrongKey, slot, wrapperID)
	}
	return bytes.Clone(key), wrapperID, nil
}

// wrapperOf returns the wrapper id of a wrapped blob ("" if malformed).
func wrapperOf(blob []byte) string {
	n, l := binary.Uvarint(blob)
	if l <= 0 || n > 64 || uint64(len(blob)-l) < n {
		return ""
	}
	return string(blob[l : l+int(n)])
}
