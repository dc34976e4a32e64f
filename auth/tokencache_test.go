package auth

import (
	"context"
	"errors"
	"testing"
)

// countingKV is memKV with a count of reads.
type countingKV struct {
	*memKV
	gets uint64
}

func (k *countingKV) Get(key []byte) ([]byte, error) {
	k.gets++
	return k.memKV.Get(key)
}

// With a store that counts its KV writes, verifying a token again reads
// nothing while nothing was written, and a revocation is seen at once.
func TestVerifyCachesUntilAKVWrite(t *testing.T) {
	kv := &countingKV{memKV: newMemKV()}
	tokens := NewTokens(kv, kv, nil)
	ctx := context.Background()
	tok, info, err := tokens.Create(ctx, RoleViewer, "dash", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(tok); err != nil {
		t.Fatal(err)
	}
	before := kv.gets
	for range 10 {
		if _, err := tokens.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if kv.gets != before {
		t.Fatalf("%d store reads for 10 verifications with no write in between", kv.gets-before)
	}
	if _, err := tokens.Revoke(ctx, info.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token verified: %v", err)
	}
	// An unrelated write also makes the next verification read again.
	other, _, err := tokens.Create(ctx, RoleViewer, "other", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	before = kv.gets
	if _, err := tokens.Verify(other); err != nil {
		t.Fatal(err)
	}
	if kv.gets == before {
		t.Fatal("a token created after the cache filled was verified without reading it")
	}
}
