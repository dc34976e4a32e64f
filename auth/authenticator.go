package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is the authentication and authorization section of the server
// configuration.
type Config struct {
	// AdminTokenFile holds an admin token chosen by the operator (env
	// LEDGER_ADMIN_TOKEN). When one is configured, no initial admin token
	// is generated.
	AdminTokenFile string `json:"adminTokenFile"`
	// ClientCertificates map verified TLS client certificates to roles;
	// see CertRule.
	ClientCertificates []CertRule `json:"clientCertificates"`
	// SensitiveRoles may read sensitive fields decrypted. Default
	// audit_admin and compliance_officer.
	SensitiveRoles []Role `json:"sensitiveRoles"`
	// PublicProofs lets callers without credentials read checkpoints and
	// proofs (never event contents).
	PublicProofs bool `json:"publicProofs"`
	// AnonymousRole is given to callers without credentials. For tests
	// and local experiments only: the node refuses it unless every
	// listener is on loopback.
	AnonymousRole Role `json:"anonymousRole"`
}

// Authenticator turns credentials into a Principal. Safe for concurrent
// use.
type Authenticator struct {
	tokens    *Tokens
	admin     [32]byte
	hasAdmin  bool
	certs     []certMatch
	sensitive []Role
	anonymous Principal
}

// NewAuthenticator builds an authenticator over the token table with
// the configuration cfg; adminToken is the configured admin token, if
// any (at least 32 bytes).
func NewAuthenticator(tokens *Tokens, cfg Config, adminToken string) (*Authenticator, error) {
	a := &Authenticator{tokens: tokens, sensitive: cfg.SensitiveRoles}
	if a.sensitive == nil {
		a.sensitive = DefaultSensitiveRoles
	}
	for _, r := range a.sensitive {
		if _, err := ParseRole(string(r)); err != nil {
			return nil, fmt.Errorf("sensitiveRoles: %w", err)
		}
	}
	if adminToken != "" {
		if len(adminToken) < 32 {
			return nil, errors.New("auth: the configured admin token must be at least 32 characters")
		}
		a.admin, a.hasAdmin = adminHash(adminToken), true
	}
	var err error
	if a.certs, err = compileCertRules(cfg.ClientCertificates); err != nil {
		return nil, err
	}
	for i := range a.certs {
		a.certs[i].perms = a.withSensitive(a.certs[i].roles, a.certs[i].perms)
	}
	a.anonymous = Principal{ID: "anonymous", Kind: KindAnonymous}
	if cfg.AnonymousRole != "" {
		if _, err := ParseRole(string(cfg.AnonymousRole)); err != nil {
			return nil, fmt.Errorf("anonymousRole: %w", err)
		}
		a.anonymous.Roles = []Role{cfg.AnonymousRole}
		a.anonymous.Perms = a.withSensitive(a.anonymous.Roles, cfg.AnonymousRole.Permissions())
	}
	if cfg.PublicProofs {
		a.anonymous.Perms |= PermProofs
	}
	return a, nil
}

func adminHash(tok string) [32]byte { return sha256.Sum256([]byte("ledgerd admin token\x00" + tok)) }

func (a *Authenticator) withSensitive(roles []Role, p Permission) Permission {
	for _, r := range roles {
		if slices.Contains(a.sensitive, r) {
			return p | PermSensitive
		}
	}
	return p
}

// Credentials are what a request presented.
type Credentials struct {
	// Bearer is the token of an "Authorization: Bearer" header; HasBearer
	// is true when such a header was present (even empty).
	Bearer    string
	HasBearer bool
	// Cert is the leaf of a client certificate chain the TLS handshake
	// verified against the configured CA, or nil; Chain is the whole
	// verified chain, leaf first, root last.
	Cert  *x509.Certificate
	Chain []*x509.Certificate
}

// Authenticate returns the principal for creds: a bearer token when one
// is given (a bad token fails, it never falls back), else a verified
// client certificate that a rule maps, else the anonymous principal
// (which holds only what the configuration grants to everyone).
func (a *Authenticator) Authenticate(creds Credentials) (*Principal, error) {
	if creds.HasBearer {
		return a.token(creds.Bearer)
	}
	if creds.Cert != nil {
		if p := certPrincipal(a.certs, creds.Cert); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("%w: client certificate %q maps to no principal", ErrUnauthenticated, certName(creds.Cert))
	}
	anon := a.anonymous
	return &anon, nil
}

func (a *Authenticator) token(s string) (*Principal, error) {
	if a.hasAdmin {
		h := adminHash(s)
		if subtle.ConstantTimeCompare(h[:], a.admin[:]) == 1 {
			return &Principal{ID: "admin_token", Kind: KindAdminToken, Roles: []Role{RoleAdmin}, Perms: a.withSensitive([]Role{RoleAdmin}, RoleAdmin.Permissions())}, nil
		}
	}
	tok, err := ParseToken(s)
	if err != nil {
		return nil, err
	}
	if a.tokens == nil {
		return nil, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	info, err := a.tokens.Verify(tok)
	if err != nil {
		return nil, err
	}
	roles := []Role{info.Role}
	return &Principal{ID: "token:" + info.ID, Name: info.Name, Kind: KindToken, Roles: roles, Perms: a.withSensitive(roles, info.Role.Permissions())}, nil
}

// certName is a printable name of a certificate for messages.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "cn:" + c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return "dns:" + c.DNSNames[0]
	}
	return strings.TrimSpace(c.Subject.String())
}
