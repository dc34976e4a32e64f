package auth

import (
	"context"
	"fmt"
)

// Kind says how a principal authenticated.
type Kind string

// Kinds of principal.
const (
	KindToken       Kind = "token"       // an API token from the token table
	KindAdminToken  Kind = "admin_token" // the admin token given in the configuration
	KindCertificate Kind = "certificate" // a verified TLS client certificate
	KindAnonymous   Kind = "anonymous"   // no credentials
	KindInternal    Kind = "internal"    // the server itself (self-audit, erasure)
)

// Principal is an authenticated caller.
type Principal struct {
	// ID names the caller in audit events: "token:<id>",
	// "cert:cn:<name>", "admin_token", "anonymous".
	ID    string
	Name  string // the token's name, when it has one
	Kind  Kind
	Roles []Role
	Perms Permission
}

// Anonymous reports whether the caller gave no credentials.
func (p *Principal) Anonymous() bool { return p == nil || p.Kind == KindAnonymous }

// Can reports whether the principal holds every permission of perm.
func (p *Principal) Can(perm Permission) bool { return p != nil && p.Perms.Has(perm) }

// Require returns nil when the principal may do what perm covers, an
// ErrUnauthenticated when an anonymous caller may not (credentials would
// help), and a *DeniedError naming the missing permission otherwise.
func (p *Principal) Require(perm Permission) error {
	if p.Can(perm) {
		return nil
	}
	if p.Anonymous() {
		return fmt.Errorf("%w: credentials required (a bearer token or a client certificate)", ErrUnauthenticated)
	}
	return &DeniedError{Principal: p.String(), Missing: p.Perms.Missing(perm)}
}

// String names the principal for messages: "token:ab12… (ci) [ingest]".
func (p *Principal) String() string {
	if p == nil {
		return "anonymous"
	}
	s := p.ID
	if p.Name != "" {
		s += " (" + p.Name + ")"
	}
	if len(p.Roles) > 0 {
		s += fmt.Sprint(" ", p.Roles)
	}
	return s
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the interceptor or middleware put in
// ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Internal is the principal of work the server does on its own behalf.
var Internal = &Principal{ID: "ledgerd", Kind: KindInternal, Perms: PermAll}
