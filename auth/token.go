package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// The token format: "ldg_" id "_" secret, where id is 16 lowercase hex
// digits (8 random bytes, the token's public name) and secret is 32
// random bytes in unpadded base64url (43 characters). Only
// SHA-256("ledgerd token\x00" || id || secret) is stored; the secret is
// shown once, at creation.
const (
	TokenPrefix   = "ldg_"
	tokenIDLen    = 16
	tokenSecLen   = 43
	tokenLen      = len(TokenPrefix) + tokenIDLen + 1 + tokenSecLen
	tokenSecBytes = 32
)

// Token is a parsed bearer token.
type Token struct {
	ID     string
	Secret [tokenSecBytes]byte
}

// NewToken returns a fresh random token.
func NewToken() Token {
	var t Token
	var id [8]byte
	rand.Read(id[:])
	rand.Read(t.Secret[:])
	t.ID = hex.EncodeToString(id[:])
	return t
}

// String is the bearer form of the token. It is the secret: never log it.
func (t Token) String() string {
	return TokenPrefix + t.ID + "_" + base64.RawURLEncoding.EncodeToString(t.Secret[:])
}

// Hash is what the token table stores.
func (t Token) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte("ledgerd token\x00"))
	h.Write([]byte(t.ID))
	h.Write(t.Secret[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParseToken parses the bearer form strictly: anything but exactly the
// format above is refused with ErrUnauthenticated. The error never
// repeats the input.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return t, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	id, rest := s[len(TokenPrefix):len(TokenPrefix)+tokenIDLen], s[len(TokenPrefix)+tokenIDLen:]
	if !isLowerHex(id) || rest[0] != '_' {
		return t, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	n, err := base64.RawURLEncoding.Strict().Decode(t.Secret[:], []byte(rest[1:]))
	if err != nil || n != tokenSecBytes {
		return Token{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	t.ID = id
	return t, nil
}

// ValidTokenID reports whether s has the form of a token id.
func ValidTokenID(s string) bool { return len(s) == tokenIDLen && isLowerHex(s) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive). ok is false when the
// value is not a bearer credential.
func BearerToken(header string) (tok string, ok bool) {
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(header[len(scheme):]), true
}
