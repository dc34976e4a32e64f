package sealed

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func text(id, payload []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	if id == nil {
		return "pii:v2::" + enc(payload)
	}
	return "pii:v2:d" + enc(id) + ":" + enc(payload)
}

// TestForms: canonical texts and their binary values, both ways; what
// is not one converts to nothing.
func TestForms(t *testing.T) {
	id := bytes.Repeat([]byte{0xa5}, IDBytes)
	p16, p40 := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{0xfe}, 40)
	canonical16 := text(nil, p16)
	for _, tc := range []struct {
		name, text string
		binary     []byte // nil: not a value
	}{
		{"keyless", text(nil, p40), append([]byte{Keyless}, p40...)},
		{"keyed", text(id, p40), append(append([]byte{Keyed}, id...), p40...)},
		{"shortest", canonical16, append([]byte{Keyless}, p16...)},
		{"payload under 16 bytes", text(nil, p16[:15]), nil},
		{"keyed payload under 16 bytes", text(id, p16[:15]), nil},
		{"trailing bits", canonical16[:len(canonical16)-1] + "B", nil},
		{"padding", canonical16 + "==", nil},
		{"line break", text(nil, p40)[:20] + "\n" + text(nil, p40)[20:], nil},
		{"line break in the id", text(id, p40)[:12] + "\r" + text(id, p40)[12:], nil},
		{"short key id", "pii:v2:d" + strings.Repeat("A", 15) + ":" + text(nil, p40)[8:], nil},
		{"field key id", "pii:v2:f" + strings.Repeat("A", 16) + ":" + text(nil, p40)[8:], nil},
		{"v1", "pii:v1:" + text(id, p40)[7:], nil},
		{"sensitive", "enc:v2:" + text(id, p40)[7:], nil},
		{"plain", "alice@example.com", nil},
		{"empty payload", "pii:v2::", nil},
		{"prefix only", "pii:v2:", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AppendFromText([]byte("x"), tc.text)
			if ok != (tc.binary != nil) || !bytes.Equal(got[1:], tc.binary) || got[0] != 'x' {
				t.Fatalf("AppendFromText = %x, %v; want %x", got, ok, tc.binary)
			}
			if tc.binary == nil {
				return
			}
			if !IsBinary(tc.binary) || !MaybeBinary(tc.binary) {
				t.Fatal("not IsBinary")
			}
			if back, ok := Text(tc.binary); !ok || back != tc.text || TextLen(tc.binary) != len(back) {
				t.Fatalf("Text = %q, %v (TextLen %d); want %q", back, ok, TextLen(tc.binary), tc.text)
			}
			i, p, ok := Split(tc.binary)
			if want := tc.binary[0] == Keyed; !ok || (i != nil) != want || !bytes.Equal(AppendBinary(nil, i, p), tc.binary) {
				t.Fatalf("Split = %x, %x, %v", i, p, ok)
			}
		})
	}
	for _, b := range [][]byte{nil, {Keyless}, append([]byte{Keyless}, p16[:15]...), append([]byte{Keyed}, p16...), []byte("pii:v2::AAAA")} {
		if IsBinary(b) {
			t.Errorf("%x: IsBinary", b)
		}
		if _, ok := Text(b); ok {
			t.Errorf("%x: has a text", b)
		}
		if _, _, ok := Split(b); ok {
			t.Errorf("%x: splits", b)
		}
	}
}

// TestRoundTrip: every binary value has one text, which converts back
// to it.
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var id []byte
		if rapid.Bool().Draw(t, "keyed") {
			id = rapid.SliceOfN(rapid.Byte(), IDBytes, IDBytes).Draw(t, "id")
		}
		b := AppendBinary(nil, id, rapid.SliceOfN(rapid.Byte(), MinPayload, 200).Draw(t, "payload"))
		s, ok := Text(b)
		if !ok || s != text(id, b[len(b)-(len(b)-1-len(id)):]) {
			t.Fatalf("Text(%x) = %q, %v", b, s, ok)
		}
		if back, ok := AppendFromText(nil, s); !ok || !bytes.Equal(back, b) {
			t.Fatalf("%q came back as %x, %v", s, back, ok)
		}
	})
}

// FuzzText: text converts to binary only when it is the canonical text
// of that binary, and binary to text only when it converts back.
func FuzzText(f *testing.F) {
	f.Add("pii:v2::AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pii:v2:dAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("\xf8AAAAAAAAAAAAAAAA")
	f.Add("\xf9AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		if b, ok := AppendFromText(nil, s); ok {
			if back, ok := Text(b); !ok || back != s {
				t.Fatalf("%q -> %x -> %q, %v", s, b, back, ok)
			}
		} else if len(b) != 0 {
			t.Fatalf("%q: appended %x and failed", s, b)
		}
		if back, ok := Text(s); ok {
			if b, ok := AppendFromText(nil, back); !ok || string(b) != s {
				t.Fatalf("%x -> %q -> %x, %v", s, back, b, ok)
			}
		} else if IsBinary(s) {
			t.Fatalf("%x: binary without a text", s)
		}
	})
}
