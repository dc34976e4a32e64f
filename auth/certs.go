package auth

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// CertRule maps client certificates to a principal: the first rule whose
// Match names the verified certificate's subject common name or one of
// its subject alternative names gives the principal its roles.
//
// Match is "kind:value" with kind one of cn (Subject CN), dns (DNS SAN),
// uri (URI SAN, e.g. a SPIFFE id) or email (email SAN); the comparison
// is exact (case-insensitive for dns and email).
type CertRule struct {
	Match string `json:"match"`
	Roles []Role `json:"roles"`
}

type certMatch struct {
	kind, value string
	roles       []Role
	perms       Permission
}

var certKinds = []string{"cn", "dns", "uri", "email"}

// ParseCertMatch parses and checks the Match of a rule.
func ParseCertMatch(s string) (kind, value string, err error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || !slices.Contains(certKinds, kind) {
		return "", "", fmt.Errorf("auth: certificate match %q: want cn:, dns:, uri: or email: and a value", s)
	}
	if value == "" || len(value) > 1024 {
		return "", "", fmt.Errorf("auth: certificate match %q: value must be 1 to 1024 bytes", s)
	}
	for _, r := range value {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return "", "", fmt.Errorf("auth: certificate match %q: value has a non-printable character", s)
		}
	}
	if kind == "dns" || kind == "email" {
		value = strings.ToLower(value)
	}
	return kind, value, nil
}

func compileCertRules(rules []CertRule) ([]certMatch, error) {
	out := make([]certMatch, 0, len(rules))
	for i, r := range rules {
		kind, value, err := ParseCertMatch(r.Match)
		if err != nil {
			return nil, fmt.Errorf("clientCertificates[%d]: %w", i, err)
		}
		if len(r.Roles) == 0 {
			return nil, fmt.Errorf("clientCertificates[%d]: no roles", i)
		}
		m := certMatch{kind: kind, value: value, roles: r.Roles}
		for _, role := range r.Roles {
			if _, err := ParseRole(string(role)); err != nil {
				return nil, fmt.Errorf("clientCertificates[%d]: %w", i, err)
			}
			m.perms |= role.Permissions()
		}
		out = append(out, m)
	}
	return out, nil
}

// matches reports whether the certificate carries the rule's name.
func (m *certMatch) matches(c *x509.Certificate) bool {
	switch m.kind {
	case "cn":
		return c.Subject.CommonName == m.value
	case "dns":
		return slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, m.value) })
	case "email":
		return slices.ContainsFunc(c.EmailAddresses, func(n string) bool { return strings.EqualFold(n, m.value) })
	case "uri":
		for _, u := range c.URIs {
			if u.String() == m.value {
				return true
			}
		}
	}
	return false
}

// certPrincipal maps a verified leaf certificate to its principal, or
// nil when no rule matches.
func certPrincipal(rules []certMatch, c *x509.Certificate) *Principal {
	for i := range rules {
		m := &rules[i]
		if m.matches(c) {
			return &Principal{ID: "cert:" + m.kind + ":" + m.value, Kind: KindCertificate, Roles: m.roles, Perms: m.perms}
		}
	}
	return nil
}
