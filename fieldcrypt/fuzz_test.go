package fieldcrypt

import (
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/internal/sealed"
	"github.com/auditledger/ledgerd/ledger"
)

// FuzzParseSealed: the stored form parses strictly (what parses prints
// back identically, binary v2 values as their text) and revealing any
// value never panics.
func FuzzParseSealed(f *testing.F) {
	f.Add("enc:v1:f0123456789abcdef01234567:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pii:v1:d0123456789abcdef01234567:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("enc:v1:")
	f.Add("pii:v2:d0123456789abcdef01234567:AA")
	f.Add("pii:v1:dABCDEFGHIJKLMNOP:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pii:v2:dABCDEFGHIJKLMNOP:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pii:v2::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("enc:v2::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pii:v2:f0123456789abcdef01234567:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("plain value")
	f.Add("\xf8" + strings.Repeat("\x01", 16))
	f.Add("\xf9" + strings.Repeat("\x01", 12+20))
	f.Add("\xf9" + strings.Repeat("\x01", 12+15))
	mk := make([]byte, 32)
	master, _ := NewMasterKeys(mk)
	st := openStore(f, f.TempDir())
	f.Cleanup(func() { st.Close() })
	c, err := New(Options{Master: master, Store: st, Commit: ledger.LocalCommitter{Store: st}, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSealed(s)
		if err == nil {
			want := s
			if text, ok := sealed.Text(s); ok {
				want = text
			}
			if v.String() != want {
				t.Fatalf("ParseSealed(%q).String() = %q, want %q", s, v.String(), want)
			}
			if !IsSealed(s) {
				t.Fatalf("parsed but not IsSealed: %q", s)
			}
		}
		e := ledger.Event{Actor: ledger.Actor{ID: s, IP: s}, Action: ledger.Action{Metadata: map[string]string{"password": s}}}
		c.Reveal(&e, true)
		if err == nil && e.Actor.IP == s {
			t.Fatalf("a parsed ciphertext was returned as is: %q", s)
		}
		if err != nil && e.Actor.IP != s && !strings.HasPrefix(e.Actor.IP, "[") {
			t.Fatalf("a non-ciphertext changed: %q -> %q", s, e.Actor.IP)
		}
	})
}
