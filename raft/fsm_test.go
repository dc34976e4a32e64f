package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/auditledger/ledgerd/ledger"
)

func testLeaf(id string, stamp int64) []byte {
	return ledger.EncodeLeaf(&ledger.Entry{
		Event:      event(id),
		ReceivedAt: stamp,
		KeyID:      "k",
		Signature:  bytes.Repeat([]byte{7}, 32),
	})
}

func TestCommandCodec(t *testing.T) {
	leaves := [][]byte{testLeaf("a", 1), testLeaf("b", 2), {}}
	cmd, err := decodeCommand(encodeLeaves(leaves))
	if err != nil || cmd.kind != kindLeaves || fmt.Sprint(cmd.leaves) != fmt.Sprint(leaves) {
		t.Fatalf("leaves round trip: %v %v", cmd, err)
	}
	ops := []ledger.KV{{Key: []byte("f/a"), Value: []byte("1")}, {Key: []byte("f/b"), Delete: true}}
	cmd, err = decodeCommand(encodeKV(ops))
	if err != nil || cmd.kind != kindKV || fmt.Sprint(cmd.ops) != fmt.Sprint(ops) {
		t.Fatalf("kv round trip: %v %v", cmd, err)
	}

	good := encodeLeaves(leaves)
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x20; return b }
	resum := encodeRaw // a well-checksummed but malformed body
	cases := map[string][]byte{
		"empty":          nil,
		"short":          good[:5],
		"version":        flip(0),
		"kind":           flip(1),
		"body bit":       flip(10),
		"checksum bit":   flip(len(good) - 1),
		"truncated":      good[:len(good)-6],
		"bad version":    resum([]byte{9, kindLeaves, 0}),
		"unknown kind":   resum([]byte{commandVersion, 7, 0}),
		"count too big":  resum([]byte{commandVersion, kindLeaves, 5, 1, 'x'}),
		"trailing bytes": resum([]byte{commandVersion, kindLeaves, 1, 1, 'x', 'y'}),
		"leaf too long":  resum([]byte{commandVersion, kindLeaves, 1, 9, 'x'}),
		"kv flags":       resum([]byte{commandVersion, kindKV, 1, 2, 1, 'k', 0}),
	}
	for name, b := range cases {
		if _, err := decodeCommand(b); !errors.Is(err, errBadCommand) {
			t.Errorf("%s: got %v, want errBadCommand", name, err)
		}
	}
}

// encodeRaw frames body with a valid checksum.
func encodeRaw(body []byte) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

// TestFSMDeterministic applies one log to two state machines on two
// stores and compares them byte for byte, then replays the log on one
// (as Raft does after a restart) and checks nothing changes.
func TestFSMDeterministic(t *testing.T) {
	var log []*hraft.Log
	add := func(data []byte) {
		log = append(log, &hraft.Log{Index: uint64(len(log) + 1), Term: 1, Type: hraft.LogCommand, Data: data})
	}
	for b := 0; b < 20; b++ {
		var leaves [][]byte
		for i := 0; i < 1+b*7; i++ {
			leaves = append(leaves, testLeaf(fmt.Sprintf("e-%d-%d", b, i), int64(b*1000+i)))
		}
		if b%5 == 3 { // a duplicate of an earlier id and one within the batch
			leaves = append(leaves, testLeaf("e-0-0", 99), leaves[0])
		}
		add(encodeLeaves(leaves))
		if b%4 == 1 {
			add(encodeKV([]ledger.KV{{Key: []byte(fmt.Sprintf("f/cursor-%d", b%3)), Value: []byte{byte(b)}}}))
		}
		if b == 7 {
			add(encodeLeaves([][]byte{[]byte("not a leaf")})) // rejected on every node alike
			add(encodeKV([]ledger.KV{{Key: []byte("e/forbidden"), Value: []byte{1}}}))
		}
	}

	apply := func(f *FSM) []applyResponse {
		var out []applyResponse
		for _, l := range log {
			out = append(out, f.Apply(l).(applyResponse))
		}
		return out
	}
	stores := []*ledger.Store{openTestStore(t), openTestStore(t)}
	var results [][]applyResponse
	for _, st := range stores {
		results = append(results, apply(NewFSM(st, testLogger())))
	}
	if stores[0].State() != stores[1].State() {
		t.Fatalf("states differ: %+v vs %+v", stores[0].State(), stores[1].State())
	}
	for i := range results[0] {
		if a, b := fmtResp(results[0][i]), fmtResp(results[1][i]); a != b {
			t.Fatalf("entry %d: apply results differ:\n%s\n%s", i+1, a, b)
		}
	}
	invalid := 0
	for _, r := range results[0] {
		if errors.Is(r.err, ledger.ErrInvalid) {
			invalid++
		} else if r.err != nil {
			t.Fatalf("unexpected apply error %v", r.err)
		}
	}
	if invalid != 2 {
		t.Fatalf("%d entries rejected, want 2", invalid)
	}
	snap0 := snapshotOf(t, stores[0])
	if !bytes.Equal(snap0, snapshotOf(t, stores[1])) {
		t.Fatal("stores differ byte for byte")
	}

	// Replay: every entry again, as after a restart. Nothing changes.
	replayed := apply(NewFSM(stores[0], testLogger()))
	if !bytes.Equal(snap0, snapshotOf(t, stores[0])) {
		t.Fatal("replay changed the store")
	}
	for i, r := range replayed {
		// A replayed batch answers from the stored entries: same indexes.
		// (Its Duplicate flags are not compared: Store.lookupResults marks
		// the second copy of an id repeated within a batch as new. Nobody
		// waits for a replayed entry's answer.)
		if r.err == nil && indexes(r.results) != indexes(results[0][i].results) {
			t.Fatalf("entry %d: replay answered %v, first apply %v", i+1, indexes(r.results), indexes(results[0][i].results))
		}
	}

	// A damaged entry stops the FSM for good.
	f := NewFSM(stores[1], testLogger())
	bad := bytes.Clone(log[0].Data)
	bad[3] ^= 1
	if r := f.Apply(&hraft.Log{Index: 1000, Data: bad}).(applyResponse); !errors.Is(r.err, ledger.ErrCorrupt) {
		t.Fatalf("damaged entry: %v", r.err)
	}
	if r := f.Apply(&hraft.Log{Index: 1001, Data: encodeLeaves([][]byte{testLeaf("later", 1)})}).(applyResponse); r.err == nil {
		t.Fatal("FSM applied after a damaged entry")
	}
	if f.Err() == nil {
		t.Fatal("FSM.Err is nil after a damaged entry")
	}
}

func indexes(rs []ledger.Result) string {
	var b []byte
	for _, r := range rs {
		b = fmt.Appendf(b, "%d:%s ", r.Index, r.ID)
	}
	return string(b)
}

func fmtResp(r applyResponse) string { return fmt.Sprintf("%v %v", r.results, r.err) }

func openTestStore(t testing.TB) *ledger.Store {
	t.Helper()
	st, err := ledger.OpenStore(t.TempDir(), ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func snapshotOf(t testing.TB, st *ledger.Store) []byte {
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

// TestFSMRestore checks the two paths of Restore: a store that already
// holds the snapshot keeps its data (start-up), a store behind is
// replaced (catch-up), and a store that disagrees with the snapshot is
// refused.
func TestFSMRestore(t *testing.T) {
	src := openTestStore(t)
	fsrc := NewFSM(src, testLogger())
	for i := 1; i <= 5; i++ {
		fsrc.Apply(&hraft.Log{Index: uint64(i), Data: encodeLeaves([][]byte{testLeaf(fmt.Sprint(i), 1)})})
	}
	snap := snapshotOf(t, src)

	// Ahead: keeps its data.
	if err := fsrc.Restore(nopCloser{bytes.NewReader(snap)}); err != nil || fsrc.restores.Load() != 0 {
		t.Fatalf("restore onto itself: %v, %d restores", err, fsrc.restores.Load())
	}
	// Behind: replaced.
	behind := openTestStore(t)
	fb := NewFSM(behind, testLogger())
	fb.Apply(&hraft.Log{Index: 1, Data: encodeLeaves([][]byte{testLeaf("1", 1)})})
	if err := fb.Restore(nopCloser{bytes.NewReader(snap)}); err != nil || fb.restores.Load() != 1 {
		t.Fatalf("restore behind: %v", err)
	}
	if behind.State() != src.State() {
		t.Fatal("restored state differs")
	}
	// Ahead but different: refused.
	other := openTestStore(t)
	fo := NewFSM(other, testLogger())
	for i := 1; i <= 6; i++ {
		fo.Apply(&hraft.Log{Index: uint64(i), Data: encodeLeaves([][]byte{testLeaf("other"+fmt.Sprint(i), 1)})})
	}
	if err := fo.Restore(nopCloser{bytes.NewReader(snap)}); !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("restore onto a different history: %v", err)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
