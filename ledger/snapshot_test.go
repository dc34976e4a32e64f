package ledger_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/auditledger/ledgerd/ledger"
)

func snapLeaf(i int) []byte {
	return ledger.EncodeLeaf(&ledger.Entry{
		Event: ledger.Event{
			ID:     fmt.Sprintf("ev-%06d", i),
			Actor:  ledger.Actor{ID: "alice"},
			Action: ledger.Action{Type: "read", Resource: "doc", Result: "success"},
		},
		ReceivedAt: int64(i),
		KeyID:      "k",
		Signature:  bytes.Repeat([]byte{byte(i)}, 32),
	})
}

func fillStore(t *testing.T, st *ledger.Store, from, batches, per int) {
	t.Helper()
	seq := st.State().LastApplied
	for b := 0; b < batches; b++ {
		leaves := make([][]byte, per)
		for i := range leaves {
			leaves[i] = snapLeaf(from + b*per + i)
		}
		seq++
		if _, err := st.Apply(seq, leaves); err != nil {
			t.Fatal(err)
		}
	}
}

func openStore(t *testing.T) *ledger.Store {
	t.Helper()
	st, err := ledger.OpenStore(t.TempDir(), ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func snapshotBytes(t *testing.T, st *ledger.Store) []byte {
	t.Helper()
	sn, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotRestore restores a snapshot over a store that is behind and
// over one that holds other data, and checks that both end up with the
// source's exact state: size, root, leaves, proofs, reserved tables.
func TestSnapshotRestore(t *testing.T) {
	src := openStore(t)
	fillStore(t, src, 0, 7, 150) // 1050 leaves: full tiles and a partial one
	if err := src.ApplyKV(src.State().LastApplied+1, []ledger.KV{{Key: []byte("f/cursor"), Value: []byte("42")}}); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, src)
	// Later writes are not in the snapshot.
	fillStore(t, src, 5000, 1, 3)

	hdr, err := ledger.SnapshotState(bufio.NewReader(bytes.NewReader(snap)))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Size != 1050 || hdr.LastApplied != 8 {
		t.Fatalf("header %+v", hdr)
	}

	behind := openStore(t)
	fillStore(t, behind, 0, 2, 150)
	other := openStore(t)
	fillStore(t, other, 9000, 3, 400) // diverging content and a bigger tree
	if err := other.ApplyKV(other.State().LastApplied+1, []ledger.KV{{Key: []byte("q/stale"), Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	for name, dst := range map[string]*ledger.Store{"behind": behind, "other": other} {
		t.Run(name, func(t *testing.T) {
			if _, err := dst.InclusionProof(3, dst.State().Size); err != nil { // warm the tile cache
				t.Fatal(err)
			}
			if err := dst.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatal(err)
			}
			if got := dst.State(); got != hdr {
				t.Fatalf("state %+v, want %+v", got, hdr)
			}
			if !bytes.Equal(snapshotBytes(t, dst), snap) {
				t.Fatal("snapshot of the restored store differs from the source snapshot")
			}
			for _, i := range []uint64{0, 255, 256, 1049} {
				want, _ := src.InclusionProof(i, 1050)
				got, err := dst.InclusionProof(i, 1050)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("inclusion proof %d: %v", i, err)
				}
			}
			if _, err := dst.Get([]byte("q/stale")); !errors.Is(err, ledger.ErrNotFound) {
				t.Fatalf("key from before the restore survived: %v", err)
			}
			if v, err := dst.Get([]byte("f/cursor")); err != nil || string(v) != "42" {
				t.Fatalf("reserved table: %q %v", v, err)
			}
			// Ids of the snapshot are known to the restored store (its
			// in-memory id filter was rebuilt): appending one again is a
			// duplicate, not a second entry.
			res, err := dst.Apply(dst.State().LastApplied+1, [][]byte{snapLeaf(7)})
			if err != nil || !res[0].Duplicate || res[0].Index != 7 || dst.State().Size != 1050 {
				t.Fatalf("re-append of a restored id: %+v %v, size %d", res, err, dst.State().Size)
			}
			// The store goes on from the restored state exactly as the source did.
			fillStore(t, dst, 5000, 1, 3)
			if dst.State().Size != src.State().Size || dst.State().Root != src.State().Root {
				t.Fatalf("after one more batch: %+v vs %+v", dst.State(), src.State())
			}
		})
	}
}

// TestRestoreRejectsDamage feeds broken streams: each is refused with
// ErrCorrupt and the store is unchanged.
func TestRestoreRejectsDamage(t *testing.T) {
	src := openStore(t)
	fillStore(t, src, 0, 3, 100)
	snap := snapshotBytes(t, src)

	dst := openStore(t)
	fillStore(t, dst, 0, 1, 100)
	before := dst.State()

	flip := func(off int) []byte {
		b := bytes.Clone(snap)
		b[off] ^= 0x01
		return b
	}
	cases := map[string][]byte{
		"empty":          nil,
		"bad magic":      flip(0),
		"header size":    flip(25),
		"record":         flip(len(snap) / 2),
		"checksum":       flip(len(snap) - 1),
		"truncated":      snap[:len(snap)-5],
		"trailing bytes": append(bytes.Clone(snap), 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			err := dst.Restore(bytes.NewReader(b))
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if dst.State() != before {
				t.Fatalf("state changed: %+v", dst.State())
			}
		})
	}
	// And the store still works.
	fillStore(t, dst, 100, 1, 10)
}
