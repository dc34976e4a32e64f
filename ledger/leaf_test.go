package ledger

import (
	"bytes"
	"errors"
	"testing"
)

func TestLeafRoundTrip(t *testing.T) {
	keys := newTestKeys(t)
	for i, ev := range []Event{testEvent(1), {ID: "x", Actor: Actor{ID: "a"}, Action: Action{Type: "t", Resource: "r", Result: "denied"}}} {
		e := Entry{Event: ev, ReceivedAt: 1700000000123456789}
		e.ID = "evt-123"
		leaf := keys.hmac.sealLeaf(&e)
		got, err := DecodeLeaf(leaf)
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !bytes.Equal(EncodeLeaf(got), leaf) {
			t.Fatalf("%d: re-encoding differs", i)
		}
		if err := keys.hmac.Verify(got, leaf); err != nil {
			t.Fatalf("%d: verify: %v", i, err)
		}
		if id, err := LeafID(leaf); err != nil || id != "evt-123" {
			t.Fatalf("%d: LeafID = %q, %v", i, id, err)
		}
		if got.Action.Metadata["format"] != ev.Action.Metadata["format"] || got.Actor != ev.Actor {
			t.Fatalf("%d: fields differ: %+v", i, got)
		}
		// A flipped signature byte decodes but no longer verifies.
		bad := bytes.Clone(leaf)
		bad[len(bad)-1] ^= 1
		got, err = DecodeLeaf(bad)
		if err != nil {
			t.Fatalf("%d: decode tampered sig: %v", i, err)
		}
		if err := keys.hmac.Verify(got, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d: verify tampered = %v, want ErrCorrupt", i, err)
		}
	}
}

func TestDecodeLeafRejects(t *testing.T) {
	keys := newTestKeys(t)
	e := Entry{Event: testEvent(7), ReceivedAt: 42}
	e.ID = "id"
	good := keys.hmac.sealLeaf(&e)
	cases := map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{2}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing byte":  append(bytes.Clone(good), 0),
		"only format":    {1},
		"huge length":    {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"overlong varint": func() []byte {
			// id length 2 written as the two-byte varint 0x82 0x00.
			b := []byte{1, 0x82, 0x00}
			return append(b, good[2:]...)
		}(),
	}
	for name, leaf := range cases {
		if _, err := DecodeLeaf(leaf); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	// Metadata out of order is not canonical.
	e2 := Entry{Event: Event{ID: "m", Actor: Actor{ID: "a"}, Action: Action{Type: "t", Resource: "r", Result: "success", Metadata: map[string]string{"a": "1", "b": "2"}}}}
	leaf := EncodeLeaf(&e2)
	i := bytes.Index(leaf, []byte{1, 'a', 1, '1', 1, 'b', 1, '2'})
	if i < 0 {
		t.Fatal("metadata not found in leaf")
	}
	copy(leaf[i:], []byte{1, 'b', 1, '2', 1, 'a', 1, '1'})
	if _, err := DecodeLeaf(leaf); !errors.Is(err, ErrInvalid) {
		t.Errorf("unsorted metadata: err = %v, want ErrInvalid", err)
	}
}

func FuzzDecodeLeaf(f *testing.F) {
	keys := newTestKeys(f)
	for i := range 3 {
		e := Entry{Event: testEvent(i), ReceivedAt: int64(i)}
		e.ID = "seed"
		f.Add(keys.hmac.sealLeaf(&e))
	}
	e := Entry{Event: testEvent(3), ReceivedAt: 3}
	e.ID = "seed-v2"
	e.Actor.ID = sealedForm(bytes.Repeat([]byte{3}, 12), bytes.Repeat([]byte{9}, 24))
	e.Actor.IP = sealedForm(nil, bytes.Repeat([]byte{5}, 20))
	f.Add(keys.hmac.sealLeaf(&e)) // format 2
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, leaf []byte) {
		e, err := DecodeLeaf(leaf)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// Whatever decodes is canonical: it encodes back to the same
		// bytes (in its format: format-1 leaves may hold encrypted
		// values as text, written before format 2).
		if !bytes.Equal(encodeLeaf(e, leaf[0] == LeafFormatV2), leaf) {
			t.Fatal("decoded leaf does not re-encode to itself")
		}
		if id, err := LeafID(leaf); err != nil || id != e.ID {
			t.Fatalf("LeafID = %q, %v; want %q", id, err, e.ID)
		}
	})
}

func TestValidate(t *testing.T) {
	ok := testEvent(1)
	cases := []struct {
		field string
		mut   func(e *Event)
	}{
		{"actor.id", func(e *Event) { e.Actor.ID = "" }},
		{"action.type", func(e *Event) { e.Action.Type = "" }},
		{"action.resource", func(e *Event) { e.Action.Resource = "" }},
		{"action.result", func(e *Event) { e.Action.Result = "" }},
		{"action.result", func(e *Event) { e.Action.Result = "maybe" }},
		{"timestamp", func(e *Event) { e.Timestamp = "yesterday" }},
		{"action.duration", func(e *Event) { e.Action.Duration = -1 }},
		{"action.metadata", func(e *Event) { e.Action.Metadata = map[string]string{"": "x"} }},
		{"actor.type", func(e *Event) { e.Actor.Type = "\xff" }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for _, c := range cases {
		e := testEvent(1)
		e.Action.Metadata = map[string]string{"k": "v"}
		c.mut(&e)
		err := e.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
}

// leafCap bounds the leaf's length, so that encoding never grows its
// buffer: small and large events, long values (length prefixes of 2 and
// 3 bytes), metadata.
func TestLeafCapBoundsTheLeaf(t *testing.T) {
	keys := newTestKeys(t)
	long := string(bytes.Repeat([]byte("x"), 20000))
	big := testEvent(7)
	big.Actor.Session, big.Context.Version = long, long[:200]
	big.Action.Metadata = map[string]string{"a": long, long[:300]: "b", "": ""}
	for i, ev := range []Event{testEvent(1), {Actor: Actor{ID: "a"}, Action: Action{Type: "t", Resource: "r", Result: "denied"}}, big} {
		e := Entry{Event: ev, ReceivedAt: 1}
		e.ID = "evt-1"
		leaf := keys.hmac.sealLeaf(&e)
		if c := leafCap(&e); len(leaf) > c {
			t.Errorf("%d: leaf of %d bytes, leafCap %d", i, len(leaf), c)
		}
		if enc := EncodeLeaf(&e); len(enc) > leafCap(&e) || cap(enc) != leafCap(&e) {
			t.Errorf("%d: EncodeLeaf grew its buffer: len %d cap %d, leafCap %d", i, len(enc), cap(enc), leafCap(&e))
		}
	}
}
