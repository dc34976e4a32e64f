package auth

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/ledger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTokenRoundTrip(t *testing.T) {
	tok := NewToken()
	s := tok.String()
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		t.Fatalf("token %q has the wrong shape", s)
	}
	got, err := ParseToken(s)
	if err != nil || got != tok {
		t.Fatalf("ParseToken(String()) = %+v, %v", got, err)
	}
	if NewToken() == tok {
		t.Fatal("two tokens are equal")
	}
}

func TestParseTokenRejects(t *testing.T) {
	good := NewToken().String()
	cases := map[string]string{
		"empty":            "",
		"no prefix":        "xyz" + good[3:],
		"upper hex id":     TokenPrefix + strings.ToUpper(good[4:20]) + good[20:],
		"short":            good[:len(good)-1],
		"long":             good + "A",
		"bad separator":    good[:20] + "-" + good[21:],
		"padding":          good[:len(good)-1] + "=",
		"std base64 chars": good[:len(good)-2] + "+/",
		"space":            " " + good[1:],
		// The last base64url character of 32 bytes carries 4 unused bits;
		// strict decoding refuses a non-zero value there.
		"non-canonical tail": good[:len(good)-1] + nonCanonical(good[len(good)-1]),
	}
	for name, s := range cases {
		if _, err := ParseToken(s); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: ParseToken(%q) err = %v, want ErrUnauthenticated", name, s, err)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error repeats the token", name)
		}
	}
}

// nonCanonical returns a base64url character with the same top 2 bits as
// c but non-zero low bits.
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[(i&^15)|1])
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "BEARER x": "x"} {
		if got, ok := BearerToken(in); !ok || got != want {
			t.Errorf("BearerToken(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"Basic abc", "Bearer", "", "Bearerabc"} {
		if _, ok := BearerToken(in); ok {
			t.Errorf("BearerToken(%q) accepted", in)
		}
	}
}

func TestParseTTL(t *testing.T) {
	good := map[string]time.Duration{"": 0, "0": 0, "90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute}
	for in, want := range good {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-1h", "d", "1.5d", "forever", "99999999d"} {
		if _, err := ParseTTL(in); err == nil {
			t.Errorf("ParseTTL(%q) accepted", in)
		}
	}
}

func TestRolePermissions(t *testing.T) {
	cases := []struct {
		role      Role
		can, cant Permission
	}{
		{RoleViewer, PermRead | PermQuery | PermProofs, PermAppend | PermAnalyze | PermExport | PermTokens | PermSensitive},
		{RoleAnalyst, PermRead | PermQuery | PermAnalyze, PermExport | PermReport | PermConfigure | PermAppend},
		{RoleAdmin, PermAll &^ PermSensitive, 0},
		{RoleCompliance, PermRead | PermAnalyze | PermExport | PermReport, PermConfigure | PermTokens | PermCluster | PermAppend | PermErase},
		{RoleIngest, PermAppend, PermRead | PermProofs | PermQuery},
		{RoleAuditor, PermProofs, PermRead | PermQuery | PermAppend},
	}
	for _, c := range cases {
		p := c.role.Permissions()
		if !p.Has(c.can) || p&c.cant != 0 {
			t.Errorf("%s: permissions %s", c.role, p)
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("unknown role accepted")
	}
	for _, r := range Roles() {
		if _, err := ParseRole(string(r)); err != nil {
			t.Error(err)
		}
	}
}

// memKV is an in-memory reserved table with a committer.
type memKV struct {
	m      map[string][]byte
	fail   error
	writes atomic.Uint64
}

func (k *memKV) KVWrites() uint64 { return k.writes.Load() }

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(key []byte) ([]byte, error) {
	v, ok := k.m[string(key)]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return v, nil
}

func (k *memKV) ScanKV(prefix []byte, fn func(key, value []byte) error) error {
	for key, v := range k.m {
		if strings.HasPrefix(key, string(prefix)) {
			if err := fn([]byte(key), v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *memKV) CommitKV(_ context.Context, ops []ledger.KV) error {
	if k.fail != nil {
		return k.fail
	}
	for _, op := range ops {
		if op.Delete {
			delete(k.m, string(op.Key))
		} else {
			k.m[string(op.Key)] = op.Value
		}
	}
	k.writes.Add(1)
	return nil
}

func TestAuthenticateTokens(t *testing.T) {
	kv := newMemKV()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tokens := NewTokens(kv, kv, func() time.Time { return now })
	a, err := NewAuthenticator(tokens, Config{}, strings.Repeat("a", 40))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	viewer, _, err := tokens.Create(ctx, RoleViewer, "dash", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := tokens.Create(ctx, RoleIngest, "short", time.Hour, "test")
	revoked, _, _ := tokens.Create(ctx, RoleAdmin, "gone", 0, "test")
	if _, err := tokens.Revoke(ctx, revoked.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if empty, _ := tokens.Empty(); empty {
		t.Fatal("Empty with three tokens")
	}
	forged := viewer
	forged.Secret[0] ^= 1

	p, err := a.Authenticate(Credentials{HasBearer: true, Bearer: viewer.String()})
	if err != nil || p.ID != "token:"+viewer.ID || p.Name != "dash" || !p.Can(PermRead) || p.Can(PermSensitive) {
		t.Fatalf("viewer: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(Credentials{HasBearer: true, Bearer: strings.Repeat("a", 40)}); err != nil || p.Kind != KindAdminToken || !p.Can(PermAll) {
		t.Fatalf("configured admin: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(Credentials{}); err != nil || !p.Anonymous() || p.Perms != 0 {
		t.Fatalf("no credentials: %+v, %v", p, err)
	} else if err := p.Require(PermRead); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("anonymous Require: %v", err)
	}

	now = now.Add(2 * time.Hour)
	for name, c := range map[string]struct {
		bearer string
		want   string
	}{
		"empty":     {"", "malformed"},
		"malformed": {"hello", "malformed"},
		"unknown":   {NewToken().String(), "unknown token"},
		"forged":    {forged.String(), "unknown token"},
		"expired":   {short.String(), "expired"},
		"revoked":   {revoked.String(), "revoked"},
	} {
		_, err := a.Authenticate(Credentials{HasBearer: true, Bearer: c.bearer})
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrUnauthenticated saying %q", name, err, c.want)
		}
	}

	// A denied principal is told the missing permission.
	err = p.Require(PermExport)
	var de *DeniedError
	if !errors.As(err, &de) || !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), `"export"`) {
		t.Fatalf("Require(export) = %v", err)
	}

	list, err := tokens.List()
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %v, %v", list, err)
	}
	for _, i := range list {
		if i.Hash != "" {
			t.Fatal("List returns hashes")
		}
	}
	if _, err := tokens.Revoke(ctx, "0000000000000000", "x"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if _, _, err := tokens.Create(ctx, "root", "", 0, ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("create with unknown role: %v", err)
	}
	kv.fail = errors.New("no quorum")
	if _, _, err := tokens.Create(ctx, RoleViewer, "", 0, ""); err == nil {
		t.Fatal("create with a failing committer succeeded")
	}
}

func TestAuthenticatorConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad sensitive role": {SensitiveRoles: []Role{"root"}},
		"bad anonymous role": {AnonymousRole: "root"},
		"bad cert match":     {ClientCertificates: []CertRule{{Match: "serial:1", Roles: []Role{RoleViewer}}}},
		"cert without roles": {ClientCertificates: []CertRule{{Match: "cn:a"}}},
		"cert bad role":      {ClientCertificates: []CertRule{{Match: "cn:a", Roles: []Role{"x"}}}},
	} {
		if _, err := NewAuthenticator(nil, cfg, ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewAuthenticator(nil, Config{}, "short"); err == nil {
		t.Error("short admin token accepted")
	}
	a, err := NewAuthenticator(nil, Config{PublicProofs: true, AnonymousRole: RoleCompliance}, "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := a.Authenticate(Credentials{})
	if !p.Can(PermProofs | PermSensitive | PermExport) {
		t.Fatalf("anonymous compliance officer: %s", p.Perms)
	}
}

func TestCertPrincipal(t *testing.T) {
	u, _ := url.Parse("spiffe://example.org/ns/prod/sa/payments")
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "ingest-svc"}, DNSNames: []string{"Api.Example.com"}, EmailAddresses: []string{"ops@example.com"}, URIs: []*url.URL{u}}
	cases := []struct {
		match string
		want  bool
	}{
		{"cn:ingest-svc", true},
		{"cn:Ingest-svc", false}, // CN is exact
		{"dns:api.example.com", true},
		{"dns:example.com", false},
		{"email:OPS@example.com", true},
		{"uri:spiffe://example.org/ns/prod/sa/payments", true},
		{"uri:spiffe://example.org/ns/prod", false},
	}
	for _, c := range cases {
		a, err := NewAuthenticator(nil, Config{ClientCertificates: []CertRule{{Match: c.match, Roles: []Role{RoleIngest}}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(Credentials{Cert: cert})
		if got := err == nil; got != c.want {
			t.Errorf("%s: matched %v (%v), want %v", c.match, got, err, c.want)
			continue
		}
		if err == nil && (p.Kind != KindCertificate || !p.Can(PermAppend) || p.Can(PermRead)) {
			t.Errorf("%s: principal %+v", c.match, p)
		} else if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", c.match, err)
		}
	}
	// A token wins over a certificate; a bad token never falls back.
	a, _ := NewAuthenticator(nil, Config{ClientCertificates: []CertRule{{Match: "cn:ingest-svc", Roles: []Role{RoleIngest}}}}, "")
	if _, err := a.Authenticate(Credentials{HasBearer: true, Bearer: "junk", Cert: cert}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bad token with a good certificate: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "[::1]:0": true, "localhost:80": true, "127.1.2.3:1": true,
		":7070": false, "0.0.0.0:7070": false, "10.0.0.1:7070": false, "example.com:80": false, "[::]:1": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
