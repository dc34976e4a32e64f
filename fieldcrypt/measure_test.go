package fieldcrypt

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

// TestStringFieldsSize: the spelled-out sum covers every string field.
func TestStringFieldsSize(t *testing.T) {
	var e ledger.Event
	want := 0
	for i, f := range allStringFields {
		*f.get(&e) = strings.Repeat("x", 1<<i)
		want += 1 << i
	}
	if got := stringFieldsSize(&e); got != want {
		t.Fatalf("stringFieldsSize = %b, want %b (a field is missing or counted twice)", got, want)
	}
}

// TestMetaClass: metadata keys are classified as by the selectors,
// cached up to maxMetaClasses keys and classified uncached past that.
func TestMetaClass(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{SensitiveFields: []string{"password", "*secret*"}, PersonalFields: []string{"actor.id", "metadata.email"}}, randKey(t))
	for _, tc := range []struct {
		key   string
		class string
	}{{"password", ClassSensitive}, {"PassWord", ClassSensitive}, {"mySecretThing", ClassSensitive}, {"email", ClassPersonal}, {"method", ""}} {
		for range 2 { // uncached, then cached
			class, ok := e.c.metaClass(tc.key)
			if class != tc.class || ok != (tc.class != "") {
				t.Fatalf("metaClass(%q) = %q, %v; want %q", tc.key, class, ok, tc.class)
			}
		}
	}
	for i := range 2 * maxMetaClasses {
		k := fmt.Sprintf("k%d", i)
		if i%2 == 0 {
			k += "secret"
		}
		if class, _ := e.c.metaClass(k); (class == ClassSensitive) != (i%2 == 0) {
			t.Fatalf("metaClass(%q) = %q", k, class)
		}
	}
	if n := len(*e.c.metaClasses.Load()); n > maxMetaClasses {
		t.Fatalf("%d keys cached; at most %d", n, maxMetaClasses)
	}
	// Transform encrypts the selected metadata values, and only those.
	ev := event("meta-user")
	ev.Action.Metadata = map[string]string{"password": "pw", "email": "a@example.com", "method": "PUT", "xsecretx": ""}
	out, err := e.c.Transform([]ledger.Event{ev})
	if err != nil {
		t.Fatal(err)
	}
	m := out[0].Action.Metadata
	if !IsSealed(m["password"]) || !IsSealed(m["email"]) || m["method"] != "PUT" || m["xsecretx"] != "" || ev.Action.Metadata["password"] != "pw" {
		t.Fatalf("metadata sealed as %v (input now %v)", m, ev.Action.Metadata)
	}
	got := out[0]
	e.c.Reveal(&got, true)
	if got.Action.Metadata["password"] != "pw" || got.Action.Metadata["email"] != "a@example.com" {
		t.Fatalf("revealed %v", got.Action.Metadata)
	}
}
