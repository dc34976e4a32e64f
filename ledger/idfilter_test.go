package ledger

import (
	"fmt"
	"testing"
)

func TestIDFilterHasNoFalseNegatives(t *testing.T) {
	f := newIDFilter()
	const n = 300000 // crosses several growth steps
	for i := range n {
		f.add(fmt.Sprintf("id-%d", i))
	}
	for i := range n {
		if !f.mayContain(fmt.Sprintf("id-%d", i)) {
			t.Fatalf("id-%d added but not found", i)
		}
	}
	fp := 0
	for i := range 100000 {
		if f.mayContain(fmt.Sprintf("other-%d", i)) {
			fp++
		}
	}
	// Each part is ~1%; a lookup asks every part.
	if fp > 100000*len(f.parts)*2/100 {
		t.Fatalf("%d false positives in 100000 over %d parts", fp, len(f.parts))
	}
}
