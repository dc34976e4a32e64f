package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseToken: ParseToken never panics, accepts only strings that
// print back identically, and never repeats its input in an error.
func FuzzParseToken(f *testing.F) {
	f.Add(NewToken().String())
	f.Add("ldg_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("ldg_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")
	f.Add("ldg__")
	f.Add("Bearer ldg_")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error repeats the input: %v", err)
			}
			return
		}
		if tok.String() != s {
			t.Fatalf("ParseToken(%q).String() = %q", s, tok.String())
		}
		if !ValidTokenID(tok.ID) {
			t.Fatalf("accepted id %q", tok.ID)
		}
	})
}

// FuzzCertPrincipal: parsing a certificate rule never panics; an
// accepted rule maps a certificate carrying exactly that name to a
// principal and a certificate without it to none.
func FuzzCertPrincipal(f *testing.F) {
	for _, s := range []string{"cn:svc", "dns:api.example.com", "uri:spiffe://a/b", "email:a@b.c", "cn:", "serial:1", "dns:\x00", "cn:é", "uri:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, match string) {
		kind, value, err := ParseCertMatch(match)
		if err != nil {
			return
		}
		if value == "" || !utf8.ValidString(value) {
			t.Fatalf("accepted %q", match)
		}
		rules, err := compileCertRules([]CertRule{{Match: match, Roles: []Role{RoleViewer}}})
		if err != nil {
			t.Fatal(err)
		}
		c := &x509.Certificate{}
		switch kind {
		case "cn":
			c.Subject = pkix.Name{CommonName: value}
		case "dns":
			c.DNSNames = []string{value}
		case "email":
			c.EmailAddresses = []string{value}
		case "uri":
			u, err := url.Parse(value)
			if err != nil || u.String() != value {
				return // not a URI a certificate could carry verbatim
			}
			c.URIs = []*url.URL{u}
		}
		p := certPrincipal(rules, c)
		if p == nil || p.ID != "cert:"+kind+":"+value || !p.Can(PermRead) || p.Can(PermAppend) {
			t.Fatalf("%q: principal %+v", match, p)
		}
		if certPrincipal(rules, &x509.Certificate{Subject: pkix.Name{CommonName: value + "x"}}) != nil && kind != "cn" {
			t.Fatalf("%q matched another name", match)
		}
	})
}
