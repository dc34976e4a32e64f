package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/auditledger/ledgerd/ledger"
)

// KVReader reads the replicated reserved tables: a *ledger.Store. What
// is read at one KVWrites count holds until the count changes.
type KVReader interface {
	Get(key []byte) ([]byte, error)
	ScanKV(prefix []byte, fn func(key, value []byte) error) error
	KVWrites() uint64
}

// KVCommitter replicates writes to reserved tables: the ledger's
// Committer (ledger.LocalCommitter on one node, Raft in a cluster).
type KVCommitter interface {
	CommitKV(ctx context.Context, ops []ledger.KV) error
}

// tokenPrefix is the token table: s/t/<id> → JSON TokenInfo with the hash.
var tokenPrefix = []byte("s/t/")

func tokenKey(id string) []byte { return append(slices.Clip(tokenPrefix), id...) }

// TokenInfo describes a token; it never holds the secret.
type TokenInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"hash"` // hex SHA-256, see Token.Hash
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	RevokedBy string    `json:"revokedBy,omitempty"`
}

// Expired reports whether the token has expired at now.
func (i *TokenInfo) Expired(now time.Time) bool {
	return !i.ExpiresAt.IsZero() && !now.Before(i.ExpiresAt)
}

// Revoked reports whether the token was revoked.
func (i *TokenInfo) Revoked() bool { return !i.RevokedAt.IsZero() }

// Tokens is the API token table. It lives in the ledger's reserved
// table s/t/ and every change goes through the Committer, so in a
// cluster every node holds the same tokens (and a revocation reaches
// every node). Reads go to the local store, with no cache: a revoked
// token stops working as soon as the revocation is applied here. Safe
// for concurrent use.
type Tokens struct {
	kv     KVReader
	commit KVCommitter
	now    func() time.Time

	// decoded remembers the last record read of each token with its
	// decoding: every authenticated call checks its token. A record read
	// at the store's current KVWrites count is used without reading the
	// store; after any KV write the record is read again, and decoded
	// again only if its bytes changed (revoked, replaced). It holds tokens
	// that exist, so it is as small as the table.
	mu      sync.Mutex
	decoded map[string]decodedToken
}

type decodedToken struct {
	raw    []byte
	info   TokenInfo
	writes uint64 // the store's KVWrites before raw was read
}

// NewTokens returns the token table over kv, written through commit.
// now defaults to time.Now.
func NewTokens(kv KVReader, commit KVCommitter, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{kv: kv, commit: commit, now: now, decoded: map[string]decodedToken{}}
}

// MaxTokenName bounds a token's name.
const MaxTokenName = 128

// Create makes a token with role, name and lifetime ttl (0: no expiry),
// stores its hash and returns it: the only time the secret is seen.
func (t *Tokens) Create(ctx context.Context, role Role, name string, ttl time.Duration, createdBy string) (Token, TokenInfo, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return Token{}, TokenInfo{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
	}
	if err := checkName(name); err != nil {
		return Token{}, TokenInfo{}, err
	}
	if ttl < 0 {
		return Token{}, TokenInfo{}, fmt.Errorf("%w: token lifetime must not be negative", ledger.ErrInvalid)
	}
	tok := NewToken()
	h := tok.Hash()
	now := t.now().UTC().Truncate(time.Second)
	info := TokenInfo{ID: tok.ID, Name: name, Role: role, Hash: hex.EncodeToString(h[:]), CreatedAt: now, CreatedBy: createdBy}
	if ttl > 0 {
		info.ExpiresAt = now.Add(ttl)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return Token{}, TokenInfo{}, err
	}
	if err := t.commit.CommitKV(ctx, []ledger.KV{{Key: tokenKey(tok.ID), Value: b}}); err != nil {
		return Token{}, TokenInfo{}, fmt.Errorf("auth: store token: %w", err)
	}
	if err := t.awaitLocal(ctx, tok.ID, b); err != nil {
		return Token{}, TokenInfo{}, err
	}
	info.Hash = ""
	return tok, info, nil
}

func checkName(name string) error {
	if len(name) > MaxTokenName {
		return fmt.Errorf("%w: token name longer than %d bytes", ledger.ErrInvalid, MaxTokenName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: token name has a non-printable character", ledger.ErrInvalid)
		}
	}
	return nil
}

// awaitLocal waits until this node's store holds the record just
// committed (at once on a single node; on a cluster follower once Raft
// delivers it), so the caller's next request here sees it. A revocation
// is final, so once a record says revoked it is not waited for further.
func (t *Tokens) awaitLocal(ctx context.Context, id string, want []byte) error {
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		b, err := t.kv.Get(tokenKey(id))
		if err == nil && (bytes.Equal(b, want) || bytes.Contains(b, []byte(`"revokedAt"`))) {
			return nil
		}
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		tm := time.NewTimer(delay)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return fmt.Errorf("auth: waiting for this node to apply the token change: %w", ctx.Err())
		}
	}
}

// Get returns a token's record (hash included).
func (t *Tokens) Get(id string) (TokenInfo, error) {
	if !ValidTokenID(id) {
		return TokenInfo{}, fmt.Errorf("%w: token id %q", ledger.ErrNotFound, id)
	}
	writes := t.kv.KVWrites() // before the read: a later write changes it
	t.mu.Lock()
	d, ok := t.decoded[id]
	t.mu.Unlock()
	if ok && d.writes == writes {
		return d.info, nil
	}
	b, err := t.kv.Get(tokenKey(id))
	if errors.Is(err, ledger.ErrNotFound) {
		return TokenInfo{}, fmt.Errorf("%w: token %s", ledger.ErrNotFound, id)
	}
	if err != nil {
		return TokenInfo{}, err
	}
	info := d.info
	if !ok || !bytes.Equal(d.raw, b) {
		info = TokenInfo{}
		if err := json.Unmarshal(b, &info); err != nil {
			return TokenInfo{}, fmt.Errorf("%w: token record %s: %v", ledger.ErrCorrupt, id, err)
		}
		b = bytes.Clone(b)
	} else {
		b = d.raw
	}
	t.mu.Lock()
	t.decoded[id] = decodedToken{raw: b, info: info, writes: writes}
	t.mu.Unlock()
	return info, nil
}

// List returns every token (revoked and expired ones included), by id,
// without hashes.
func (t *Tokens) List() ([]TokenInfo, error) {
	var out []TokenInfo
	err := t.kv.ScanKV(tokenPrefix, func(k, v []byte) error {
		var info TokenInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("%w: token record %s: %v", ledger.ErrCorrupt, k[len(tokenPrefix):], err)
		}
		info.Hash = ""
		out = append(out, info)
		return nil
	})
	return out, err
}

// Empty reports whether no token was ever created.
func (t *Tokens) Empty() (bool, error) {
	empty := true
	errStop := errors.New("stop")
	err := t.kv.ScanKV(tokenPrefix, func(_, _ []byte) error { empty = false; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return empty, nil
}

// Revoke marks a token revoked on every node. The record stays, so
// listings show who revoked it and when. Revoking twice is a no-op.
func (t *Tokens) Revoke(ctx context.Context, id, by string) (TokenInfo, error) {
	info, err := t.Get(id)
	if err != nil {
		return TokenInfo{}, err
	}
	if info.Revoked() {
		info.Hash = ""
		return info, nil
	}
	info.RevokedAt, info.RevokedBy = t.now().UTC().Truncate(time.Second), by
	b, err := json.Marshal(info)
	if err != nil {
		return TokenInfo{}, err
	}
	if err := t.commit.CommitKV(ctx, []ledger.KV{{Key: tokenKey(id), Value: b}}); err != nil {
		return TokenInfo{}, fmt.Errorf("auth: revoke token: %w", err)
	}
	if err := t.awaitLocal(ctx, id, b); err != nil {
		return TokenInfo{}, err
	}
	info.Hash = ""
	return info, nil
}

// Verify checks a parsed token against the table. Unknown tokens,
// wrong secrets, expired and revoked tokens fail with
// ErrUnauthenticated; expiry and revocation are only told to a caller
// who holds the right secret.
func (t *Tokens) Verify(tok Token) (TokenInfo, error) {
	info, err := t.Get(tok.ID)
	if errors.Is(err, ledger.ErrNotFound) {
		return TokenInfo{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if err != nil {
		return TokenInfo{}, err
	}
	want, err := hex.DecodeString(info.Hash)
	h := tok.Hash()
	if err != nil || subtle.ConstantTimeCompare(want, h[:]) != 1 {
		return TokenInfo{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	switch {
	case info.Revoked():
		return TokenInfo{}, fmt.Errorf("%w: token %s was revoked", ErrUnauthenticated, tok.ID)
	case info.Expired(t.now()):
		return TokenInfo{}, fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, tok.ID, info.ExpiresAt.Format(time.RFC3339))
	}
	return info, nil
}

// ParseTTL parses a token lifetime: a Go duration ("12h") or a whole
// number of days ("90d"). "" and "0" mean no expiry.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(d, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("auth: bad lifetime %q: want a number of days like 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("auth: bad lifetime %q: want 90d or a duration like 12h", s)
	}
	return v, nil
}
