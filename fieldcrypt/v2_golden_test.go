package fieldcrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/internal/sealed"
	"github.com/auditledger/ledgerd/ledger"
)

// TestV2Golden: the v2 form is stable. These strings were sealed by the
// first v2 implementation (per-key HMAC pools); faster sealing must
// produce, and open, exactly the same bytes, or values already in
// leaves would stop decrypting and stop matching StoredForms.
func TestV2Golden(t *testing.T) {
	dk, err := openDataKey("dAAAAAAAAAAAAAAAA", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	long := "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) with a longer tail to pass 64 bytes of mac input"
	for _, tc := range []struct {
		field, value, named, keyless string
	}{
		{"actor.session", "", "pii:v2:dAAAAAAAAAAAAAAAA:8kZcLSA_L13NyxV17XgUYg", ""},
		{"actor.id", "", "", "pii:v2::gA9FUbqaCtrQ66MuBLILrg"},
		{"actor.session", "user-000123", "pii:v2:dAAAAAAAAAAAAAAAA:ujpMH6LbxBcyGBqA-0kYekMFM-r_G1QTadt3", ""},
		{"actor.id", "user-000123", "", "pii:v2::wWvfrO94Fiolq7g8tjc7v3Gg_Kq5XunjbS_Q"},
		{"actor.session", "sess_0123456789abcdef", "pii:v2:dAAAAAAAAAAAAAAAA:6s9MxyFxDZqcxWH0W1njxv49lSZQiUEP2abslrgbf-xJqaf3Mw", ""},
		{"actor.id", "sess_0123456789abcdef", "", "pii:v2::IO6kB37QOL7inD1SKhx1sIZyyx4rLuhTKk0o-aH6ecLTgULsFw"},
		{"actor.session", long, "pii:v2:dAAAAAAAAAAAAAAAA:SsffeZCvaKYqS0oC_wC_nFiYgwuUUYbUT3ns6qnN_4K3c5RoZztT35wLYOlJRDvGCeBnqENPRMqFEfuLFK9UO1flrCrpAC0HdSrwJCPgPWvDMzVobfrNgT2xKci4iQwRJsu4RZs_nBL8g_Bp-A", ""},
		{"actor.id", long, "", "pii:v2::iz7lqZR20noQ4wAOTP5KBqwJAr3H2B5V8jPfb1Q-EHSFOEKgHa4TR1ws_--L6eGQFLlT0lelMyeNDDlHNg7_OQp9vwSEIFpFU44viDAOBMY9hbs_40VSNSQDVmQVSnrEe9d7hA-k2oZdFLz3tQ"},
	} {
		ad := aad(ClassPersonal, tc.field)
		var sl sealer
		for _, want := range []struct {
			form    string
			keyless bool
		}{{tc.named, false}, {tc.keyless, true}} {
			if want.form == "" {
				continue
			}
			bin := sl.sealV2(dk, ad, tc.value, want.keyless)
			if got, ok := sealed.Text(bin); !ok || got != want.form {
				t.Errorf("%s %q keyless %v: sealed %q, want %q", tc.field, tc.value, want.keyless, got, want.form)
			}
			v, err := ParseSealed(want.form)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := ParseSealed(bin); err != nil || b.String() != want.form {
				t.Errorf("%s %q: the binary parses as %q, %v", tc.field, tc.value, b.String(), err)
			}
			if pt, ok := dk.openV2(ad, v.Payload); !ok || string(pt) != tc.value {
				t.Errorf("%s %q: opened %q, %v", tc.field, tc.value, pt, ok)
			}
			if _, ok := dk.openV2(aad(ClassPersonal, "actor.ip"), v.Payload); ok {
				t.Errorf("%s %q: opened as actor.ip", tc.field, tc.value)
			}
		}
	}
}

// TestHKDF64: the allocation-free HKDF is crypto/hkdf's.
func TestHKDF64(t *testing.T) {
	for i := range 50 {
		secret := make([]byte, 32)
		rand.Read(secret)
		for _, info := range []string{"ledgerd searchable v2", "", strings.Repeat("i", 64), fmt.Sprint(i)} {
			want, err := hkdf.Key(sha256.New, secret, nil, info, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := hkdf64(secret, info); !bytes.Equal(got[:], want) {
				t.Fatalf("secret %x info %q: %x, want %x", secret, info, got, want)
			}
		}
	}
}

func BenchmarkOpenDataKey(b *testing.B) {
	raw := make([]byte, 32)
	rand.Read(raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openDataKey("dAAAAAAAAAAAAAAAA", raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFormCacheEntries: an entry answers for its own field, value and
// keylessness only, whatever the value's length; its form is sealV2's;
// a key keeps the newest formsPerField values of each field.
func TestFormCacheEntries(t *testing.T) {
	dk, err := openDataKey("dAAAAAAAAAAAAAAAA", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var sl sealer
	var fb formBatch
	long := strings.Repeat("x", 300) // a two-byte length
	for _, v := range []string{"a", "abc", long} {
		for _, keyless := range []bool{false, true} {
			dk.forms.store("")
			fb.begin(dk)
			if _, ok := fb.get(3, v, keyless); ok {
				t.Fatalf("%.8q keyless %v: cached before it was added", v, keyless)
			}
			var field string
			fb.add(&field, 3, []byte("ad"), v, keyless)
			if field != "" {
				t.Fatal("field set before flush")
			}
			fb.flush()
			if want := sl.sealV2(dk, []byte("ad"), v, keyless); field != want {
				t.Fatalf("%.8q keyless %v: form %q, sealV2 %q", v, keyless, field, want)
			}
			fb.begin(dk)
			if got, ok := fb.get(3, v, keyless); !ok || got != field {
				t.Errorf("%.8q keyless %v: get = %q, %v", v, keyless, got, ok)
			}
			for _, miss := range []struct {
				v       string
				keyless bool
			}{{v, !keyless}, {v + "c", keyless}, {v[:len(v)-1], keyless}, {"", keyless}} {
				if got, ok := fb.get(3, miss.v, miss.keyless); ok {
					t.Errorf("%.8q keyless %v: get(%.8q, %v) = %q", v, keyless, miss.v, miss.keyless, got)
				}
			}
			if _, ok := fb.get(2, v, keyless); ok {
				t.Error("another field's entry answered")
			}
		}
	}
	// Newest first, formsPerField per field: of field 3's values only
	// the last two added remain, and field 5's one entry is kept.
	fb.begin(dk)
	var f5 string
	fb.add(&f5, 5, []byte("ad5"), "five", false)
	fb.flush()
	for _, v := range []string{"p", "q", "r"} {
		fb.begin(dk)
		var f string
		fb.add(&f, 3, []byte("ad"), v, false)
		fb.flush()
	}
	fb.begin(dk)
	for v, want := range map[string]bool{"p": false, "q": true, "r": true, long: false} {
		if _, ok := fb.get(3, v, false); ok != want {
			t.Errorf("field 3 value %.8q cached: %v, want %v", v, ok, want)
		}
	}
	if got, ok := fb.get(5, "five", false); !ok || got != f5 {
		t.Errorf("field 5: %q, %v", got, ok)
	}
}

// TestFormEntriesMalformed: a cache string cut anywhere parses as the
// entries before the cut, without a panic.
func TestFormEntriesMalformed(t *testing.T) {
	dk, err := openDataKey("dAAAAAAAAAAAAAAAA", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var fb formBatch
	fb.begin(dk)
	var a, b string
	fb.add(&a, 1, []byte("ad"), strings.Repeat("v", 200), false)
	fb.add(&b, 2, []byte("ad"), "w", true)
	fb.flush()
	s := dk.forms.load()
	for cut := range len(s) {
		n := 0
		for at := 0; ; n++ {
			e, ok := nextFormEntry(s[:cut], at)
			if !ok {
				break
			}
			at = e.end
		}
		if n > 1 {
			t.Fatalf("cut at %d of %d: %d entries", cut, len(s), n)
		}
	}
}

// TestV2FormsAreBinaryInLeaves: every searchable form Transform makes —
// the keyed first one and the keyless others — is handed to the ledger
// in binary, stored in the leaf as it is, and read back as its text.
func TestV2FormsAreBinaryInLeaves(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{}, randKey(t))
	out, err := e.c.Transform([]ledger.Event{event("ann"), event("bob"), event("ann")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		leaf := ledger.EncodeLeaf(&ledger.Entry{Event: out[i], KeyID: "k", Signature: []byte{1}})
		if leaf[0] != ledger.LeafFormatV2 || bytes.Contains(leaf, []byte("pii:v2:")) {
			t.Fatalf("event %d: leaf format %d holds its v2 forms as text", i, leaf[0])
		}
		got, err := ledger.DecodeLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct{ out, got string }{{out[i].Actor.ID, got.Actor.ID}, {out[i].Actor.IP, got.Actor.IP}, {out[i].Actor.Session, got.Actor.Session}, {out[i].Actor.UserAgent, got.Actor.UserAgent}} {
			text, ok := sealed.Text(f.out)
			if !ok || !bytes.Contains(leaf, []byte(f.out)) || text != f.got || !strings.HasPrefix(text, "pii:v2:") {
				t.Fatalf("event %d: %q (binary: %v) came back as %q", i, f.out, ok, f.got)
			}
		}
	}
}
