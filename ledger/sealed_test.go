package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/auditledger/ledgerd/internal/sealed"
)

func sealedForm(id []byte, payload []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	if id == nil {
		return "pii:v2::" + enc(payload)
	}
	return "pii:v2:d" + enc(id) + ":" + enc(payload)
}

// TestSealedValuesInBinary: canonical searchable encrypted values are
// stored in binary in a format-2 leaf, everything else as text in the
// format-1 leaf it always had, and every leaf decodes back to its entry.
func TestSealedValuesInBinary(t *testing.T) {
	id12 := bytes.Repeat([]byte{0xa5}, 12)
	p16, p40 := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{0xfe}, 40)
	canonical16 := sealedForm(nil, p16)
	badBits := canonical16[:len(canonical16)-1] + "B" // non-zero trailing bits
	for _, tc := range []struct {
		name, v string
		binary  bool
	}{
		{"keyless", sealedForm(nil, p40), true},
		{"keyed", sealedForm(id12, p40), true},
		{"shortest", canonical16, true},
		{"length prefix shrinks", sealedForm(id12, bytes.Repeat([]byte{5}, 90)), true}, // text ≥ 128 bytes, binary < 128
		{"payload under 16 bytes", sealedForm(nil, p16[:15]), false},
		{"trailing bits", badBits, false},
		{"line break", sealedForm(nil, p40)[:20] + "\n" + sealedForm(nil, p40)[20:], false},
		{"short key id", "pii:v2:d" + strings.Repeat("A", 15) + ":" + sealedForm(nil, p40)[8:], false},
		{"v1", "pii:v1:" + sealedForm(id12, p40)[7:], false},
		{"sensitive", "enc:v1:" + sealedForm(id12, p40)[7:], false},
		{"plain", "alice@example.com", false},
		{"empty payload", "pii:v2::", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Entry{Event: testEvent(1), ReceivedAt: 42, KeyID: "k1", Signature: bytes.Repeat([]byte{1}, 32)}
			e.Actor.ID = tc.v
			e.Action.Metadata = map[string]string{"note": tc.v, "plain": "x"}
			leaf := EncodeLeaf(&e)
			want := byte(LeafFormatV1)
			if tc.binary {
				want = LeafFormatV2
			}
			if leaf[0] != want {
				t.Fatalf("format %d, want %d", leaf[0], want)
			}
			if text := bytes.Contains(leaf, []byte(tc.v)); text == tc.binary {
				t.Fatalf("value stored as text: %v, want %v", text, !tc.binary)
			}
			if b, ok := SealedBinary(tc.v); ok != tc.binary || ok && !bytes.Contains(leaf, []byte(b)) {
				t.Fatalf("SealedBinary: %v, want %v, or not the leaf's bytes", ok, tc.binary)
			}
			got, err := DecodeLeaf(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if got.Actor.ID != tc.v || got.Action.Metadata["note"] != tc.v {
				t.Fatalf("decoded %q / %q, want %q", got.Actor.ID, got.Action.Metadata["note"], tc.v)
			}
		})
	}
}

// TestSealedLeafCanonical: an entry has one leaf per format. Leaves
// written before format 2 (encrypted values as text) still decode; a
// format-2 leaf with an encrypted value as text, without any binary
// value, or with a malformed one does not; the id stays text.
func TestSealedLeafCanonical(t *testing.T) {
	v := sealedForm(bytes.Repeat([]byte{3}, 12), bytes.Repeat([]byte{9}, 24))
	e := Entry{Event: testEvent(2), ReceivedAt: 7, KeyID: "k1", Signature: bytes.Repeat([]byte{1}, 32)}
	e.Actor.ID = v

	old := encodeLeaf(&e, false)
	if old[0] != LeafFormatV1 || !bytes.Contains(old, []byte(v)) {
		t.Fatal("format-1 encoding does not hold the value as text")
	}
	if got, err := DecodeLeaf(old); err != nil || got.Actor.ID != v {
		t.Fatalf("a format-1 leaf with an encrypted value: %v", err)
	}
	v2 := EncodeLeaf(&e)
	if len(v2) >= len(old) {
		t.Fatalf("binary leaf %d bytes, text %d", len(v2), len(old))
	}
	relabelled := bytes.Clone(old)
	relabelled[0] = LeafFormatV2
	if _, err := DecodeLeaf(relabelled); !errors.Is(err, ErrInvalid) {
		t.Fatalf("format 2 with the value as text: %v, want ErrInvalid", err)
	}
	plain := Entry{Event: testEvent(3), ReceivedAt: 7, KeyID: "k1", Signature: bytes.Repeat([]byte{1}, 32)}
	p := EncodeLeaf(&plain)
	p[0] = LeafFormatV2
	if _, err := DecodeLeaf(p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("format 2 without a binary value: %v, want ErrInvalid", err)
	}
	// Cut the binary value's payload below 16 bytes, fixing its length.
	at := bytes.IndexByte(v2, sealed.Keyed)
	bad := append(bytes.Clone(v2[:at-1]), byte(1+12+15))
	bad = append(bad, v2[at:at+1+12+15]...)
	bad = append(bad, v2[at+1+12+24:]...)
	if _, err := DecodeLeaf(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a short binary value: %v, want ErrInvalid", err)
	}
	e.ID = v
	if l := EncodeLeaf(&e); !bytes.Contains(l, []byte(v)) {
		t.Fatal("an id that looks encrypted was stored in binary")
	} else if id, err := LeafID(l); err != nil || id != v {
		t.Fatalf("LeafID = %q, %v", id, err)
	}
}

// TestSealedRoundTrip: any string, encrypted-looking or not, in any
// field, survives a leaf and back.
func TestSealedRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s string
		if rapid.Bool().Draw(t, "sealed") {
			var id []byte
			if rapid.Bool().Draw(t, "keyed") {
				id = rapid.SliceOfN(rapid.Byte(), 12, 12).Draw(t, "id")
			}
			s = sealedForm(id, rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "payload"))
			if rapid.Bool().Draw(t, "damaged") && len(s) > 8 {
				i := rapid.IntRange(7, len(s)-1).Draw(t, "at")
				s = s[:i] + rapid.SampledFrom([]string{"", "=", "\n", "A", "é", ":"}).Draw(t, "with") + s[i+1:]
			}
		} else {
			s = rapid.String().Draw(t, "s")
		}
		if s == "" {
			return
		}
		e := Entry{Event: testEvent(1), ReceivedAt: 1, KeyID: "k", Signature: []byte{1}}
		e.Actor.IP = s
		e.Action.Metadata = map[string]string{"m": s}
		got, err := DecodeLeaf(EncodeLeaf(&e))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got.Actor.IP != s || got.Action.Metadata["m"] != s {
			t.Fatalf("%q came back as %q / %q", s, got.Actor.IP, got.Action.Metadata["m"])
		}
	})
}

// TestSealedBinaryHandedOver: an event may hold an encrypted value in
// binary, as field encryption hands it over; its leaf is the one the
// text gives, it decodes to the text, and format 1 holds the text.
func TestSealedBinaryHandedOver(t *testing.T) {
	for _, id := range [][]byte{nil, bytes.Repeat([]byte{3}, 12)} {
		payload := bytes.Repeat([]byte{0xfe}, 30)
		text := sealedForm(id, payload)
		bin := string(sealed.AppendBinary(nil, id, payload))
		withText := Entry{Event: testEvent(4), ReceivedAt: 9, KeyID: "k1", Signature: bytes.Repeat([]byte{1}, 32)}
		withText.Actor.IP = text
		withText.Action.Metadata = map[string]string{"m": text}
		withBin := withText
		withBin.Actor.IP = bin
		withBin.Action.Metadata = map[string]string{"m": bin}

		leaf := EncodeLeaf(&withBin)
		if want := EncodeLeaf(&withText); !bytes.Equal(leaf, want) {
			t.Fatalf("keyed %v: leaf of the binary\n%x\nof the text\n%x", id != nil, leaf, want)
		}
		got, err := DecodeLeaf(leaf)
		if err != nil || got.Actor.IP != text || got.Action.Metadata["m"] != text {
			t.Fatalf("keyed %v: decoded %+v, %v", id != nil, got, err)
		}
		if old := encodeLeaf(&withBin, false); !bytes.Equal(old, encodeLeaf(&withText, false)) {
			t.Fatalf("keyed %v: format 1 does not hold the text", id != nil)
		}
	}
}
