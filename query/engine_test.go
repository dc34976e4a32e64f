package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"pgregory.net/rapid"

	"github.com/auditledger/ledgerd/ledger"
)

// reference answers a filter by decoding every entry: the brute force
// the engine must agree with.
func reference(t testing.TB, st *ledger.Store, f Filter, desc bool) (out []uint64) {
	t.Helper()
	want := f.values()
	err := st.ScanLeaves(context.Background(), 0, func(i uint64, leaf []byte) error {
		e, err := ledger.DecodeLeaf(leaf)
		if err != nil {
			return err
		}
		got := [numFields]string{
			FieldActorID: e.Actor.ID, FieldActorType: e.Actor.Type, FieldActorIP: e.Actor.IP,
			FieldActionType: e.Action.Type, FieldResource: e.Action.Resource, FieldResourceID: e.Action.ResourceID,
			FieldResult: e.Action.Result, FieldApplication: e.Context.Application, FieldEnvironment: e.Context.Environment,
			FieldRequestID: e.Context.RequestID,
		}
		for k := range want {
			if want[k] != "" && want[k] != got[k] {
				return nil
			}
		}
		if !f.ReceivedFrom.IsZero() && e.ReceivedAt < f.ReceivedFrom.UnixNano() {
			return nil
		}
		if !f.ReceivedTo.IsZero() && e.ReceivedAt >= f.ReceivedTo.UnixNano() {
			return nil
		}
		if !f.TimestampFrom.IsZero() || !f.TimestampTo.IsZero() {
			if e.Timestamp == "" {
				return nil
			}
			ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if err != nil {
				return nil
			}
			if !f.TimestampFrom.IsZero() && ts.Before(f.TimestampFrom) {
				return nil
			}
			if !f.TimestampTo.IsZero() && !ts.Before(f.TimestampTo) {
				return nil
			}
		}
		out = append(out, i)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if desc {
		slices.Reverse(out)
	}
	return out
}

// TestQueryMatchesBruteForce builds random logs (receive times out of
// order by up to a few seconds, as after a leader change, client
// timestamps missing or anywhere) and checks that every random filter,
// order and page size returns exactly what a scan of every entry does,
// with exact totals, across restarts of the store.
func TestQueryMatchesBruteForce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ts := openTestStore(t, t.TempDir())
		defer ts.close()
		pick := func(label string, n int) string {
			i := rapid.IntRange(0, n).Draw(rt, label)
			if i == n {
				return ""
			}
			return fmt.Sprintf("%s%d", label[:1], i)
		}
		recv := t0
		var recvs []time.Time
		batches := rapid.IntRange(1, 12).Draw(rt, "batches")
		id := 0
		for b := range batches {
			n := rapid.IntRange(1, 40).Draw(rt, "batch size")
			var es []ledger.Entry
			for range n {
				switch rapid.IntRange(0, 9).Draw(rt, "clock") {
				case 0: // another node's clock, behind
					recv = recv.Add(-time.Duration(rapid.IntRange(1, 3000).Draw(rt, "back ms")) * time.Millisecond)
				case 1, 2, 3:
					recv = recv.Add(time.Duration(rapid.IntRange(0, 2000).Draw(rt, "fwd µs")) * time.Microsecond)
				}
				e := entry(fmt.Sprintf("e%d", id), pick("actor", 5), pick("resource", 4), recv)
				id++
				e.Actor.Type = pick("type", 2)
				e.Actor.IP = pick("ip", 3)
				e.Action.Type = pick("yaction", 3)
				e.Action.ResourceID = pick("did", 6)
				e.Action.Result = pick("outcome", 3)
				e.Context.Application = pick("napp", 2)
				e.Context.Environment = pick("venv", 2)
				e.Context.RequestID = pick("kreq", 8)
				if k := rapid.IntRange(0, 4).Draw(rt, "ts"); k > 0 {
					ts := t0.Add(time.Duration(rapid.IntRange(-100, 100).Draw(rt, "ts s")) * time.Second)
					e.Timestamp = ts.Format(time.RFC3339Nano)
				}
				if rapid.IntRange(0, 10).Draw(rt, "null byte") == 0 {
					e.Actor.ID += "\x00x"
				}
				es = append(es, e)
				recvs = append(recvs, recv)
			}
			ts.apply(es)
			if b == batches/2 && rapid.Bool().Draw(rt, "reopen") {
				ts.reopen() // the hook reloads its receive-time state
			}
		}
		for q := range rapid.IntRange(1, 8).Draw(rt, "queries") {
			_ = q
			var f Filter
			f.ActorID = pick("actor", 6)
			if rapid.IntRange(0, 9).Draw(rt, "nul filter") == 0 && f.ActorID != "" {
				f.ActorID += "\x00x"
			}
			f.Resource = pick("resource", 5)
			if rapid.Bool().Draw(rt, "more fields") {
				f.ActorType = pick("type", 3)
				f.ActorIP = pick("ip", 4)
				f.ActionType = pick("yaction", 4)
				f.ResourceID = pick("did", 7)
				f.Result = pick("outcome", 4)
				f.Application = pick("napp", 3)
				f.Environment = pick("venv", 3)
				f.RequestID = pick("kreq", 9)
			}
			if rapid.Bool().Draw(rt, "recv range") {
				a := recvs[rapid.IntRange(0, len(recvs)-1).Draw(rt, "from")]
				b := recvs[rapid.IntRange(0, len(recvs)-1).Draw(rt, "to")]
				a = a.Add(time.Duration(rapid.IntRange(-1500, 1500).Draw(rt, "from jitter µs")) * time.Microsecond)
				if !a.Before(b) {
					a, b = b, a.Add(time.Nanosecond)
				}
				if rapid.IntRange(0, 3).Draw(rt, "open from") > 0 {
					f.ReceivedFrom = a
				}
				if rapid.IntRange(0, 3).Draw(rt, "open to") > 0 {
					f.ReceivedTo = b
				}
			}
			if rapid.IntRange(0, 2).Draw(rt, "ts range") == 0 {
				a := t0.Add(time.Duration(rapid.IntRange(-120, 120).Draw(rt, "ts from")) * time.Second)
				b := a.Add(time.Duration(rapid.IntRange(1, 120).Draw(rt, "ts len")) * time.Second)
				if rapid.Bool().Draw(rt, "ts from set") {
					f.TimestampFrom = a
				}
				f.TimestampTo = b
			}
			desc := rapid.Bool().Draw(rt, "desc")
			limit := rapid.IntRange(1, 30).Draw(rt, "limit")
			want := reference(t, ts.store, f, desc)
			got := ts.all(Request{Filter: f, Descending: desc, Limit: limit})
			if !slices.Equal(got, want) {
				rt.Fatalf("filter %+v desc %v limit %d:\n got %v\nwant %v", f, desc, limit, got, want)
			}
			p, err := ts.eng.Query(context.Background(), Request{Filter: f, Descending: desc, Limit: limit})
			if err != nil {
				rt.Fatal(err)
			}
			if p.TotalEstimated || p.Total != uint64(len(want)) {
				rt.Fatalf("filter %+v: total %d (estimated %v), want %d", f, p.Total, p.TotalEstimated, len(want))
			}
		}
	})
}

// TestIndexDeterministic: the same log gives the same query tables byte
// for byte, whether built by the hook in one go or across restarts; a
// store written without the index and rebuilt answers every query the
// same way.
func TestIndexDeterministic(t *testing.T) {
	var batches [][]ledger.Entry
	recv := t0
	for b := range 20 {
		var es []ledger.Entry
		for i := range 50 {
			recv = recv.Add(time.Duration((b*7+i*13)%5-1) * 700 * time.Microsecond)
			e := entry(fmt.Sprintf("id-%d-%d", b, i), fmt.Sprintf("u%d", i%7), fmt.Sprintf("r%d", i%3), recv)
			e.Timestamp = recv.Add(-time.Second).Format(time.RFC3339Nano)
			es = append(es, e)
		}
		batches = append(batches, es)
	}
	one := openTestStore(t, t.TempDir())
	for _, b := range batches {
		one.apply(b)
	}
	two := openTestStore(t, t.TempDir())
	for i, b := range batches {
		two.apply(b)
		if i%5 == 2 {
			two.reopen()
		}
	}
	// A store written without the index, then attached: rebuilt.
	dir := t.TempDir()
	plain, err := ledger.OpenStore(dir, ledger.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches[:15] {
		leaves := make([][]byte, len(b))
		for i := range b {
			leaves[i] = ledger.EncodeLeaf(&b[i])
		}
		if _, err := plain.Apply(plain.State().LastApplied+1, leaves); err != nil {
			t.Fatal(err)
		}
	}
	plain.Close()
	three := openTestStore(t, dir)
	for _, b := range batches[15:] {
		three.apply(b)
	}
	a, b := qTables(t, one.store.DB()), qTables(t, two.store.DB())
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("query tables differ: %d, %d keys", len(a), len(b))
	}
	for _, f := range []Filter{
		{ActorID: "u3"}, {Resource: "r1", ActorID: "u2"}, {Environment: "production"},
		{ReceivedFrom: t0.Add(3 * time.Millisecond), ReceivedTo: t0.Add(40 * time.Millisecond)},
		{TimestampFrom: t0.Add(-999 * time.Millisecond), TimestampTo: t0.Add(-980 * time.Millisecond), ActorID: "u1"},
	} {
		for _, desc := range []bool{false, true} {
			want := reference(t, one.store, f, desc)
			for name, s := range map[string]*testStore{"one": one, "two": two, "rebuilt": three} {
				if got := s.all(Request{Filter: f, Descending: desc, Limit: 7}); !slices.Equal(got, want) {
					t.Errorf("%s: filter %+v desc %v: got %v, want %v", name, f, desc, got, want)
				}
			}
		}
	}
}

func qTables(t *testing.T, db *pebble.DB) []string {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("q/"), UpperBound: []byte("q0")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key())+"="+string(it.Value()))
	}
	return out
}

func TestCursorTamperAndMisuse(t *testing.T) {
	ts := openTestStore(t, t.TempDir())
	var es []ledger.Entry
	for i := range 30 {
		es = append(es, entry(fmt.Sprint(i), "u1", "doc", t0.Add(time.Duration(i)*time.Second)))
	}
	ts.apply(es)
	ctx := context.Background()
	req := Request{Filter: Filter{ActorID: "u1"}, Limit: 10}
	p, err := ts.eng.Query(ctx, req)
	if err != nil || !p.HasMore || p.Page != 1 {
		t.Fatal(p, err)
	}
	good := p.NextCursor
	raw := []byte(good)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		r := req
		r.Cursor = string(bad)
		if _, err := ts.eng.Query(ctx, r); !errors.Is(err, ledger.ErrInvalid) {
			t.Fatalf("cursor with byte %d flipped: %v", i, err)
		}
	}
	for name, r := range map[string]Request{
		"other filter": {Filter: Filter{ActorID: "u2"}, Cursor: good},
		"other order":  {Filter: Filter{ActorID: "u1"}, Descending: true, Cursor: good},
		"garbage":      {Filter: Filter{ActorID: "u1"}, Cursor: "!!!"},
	} {
		var fe *ledger.FieldError
		if _, err := ts.eng.Query(ctx, r); !errors.As(err, &fe) || fe.Field != "cursor" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another engine with the same key material (another node) accepts it.
	other, err := NewEngine(EngineOptions{Store: ts.store, CursorKey: []byte("test cursor key material")})
	if err != nil {
		t.Fatal(err)
	}
	req.Cursor = good
	p2, err := other.Query(ctx, req)
	if err != nil || p2.Page != 2 || p2.Rows[0].Index != 10 {
		t.Fatal(p2, err)
	}
	for _, l := range []int{-1, MaxLimit + 1} {
		if _, err := ts.eng.Query(ctx, Request{Limit: l}); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("limit %d: %v", l, err)
		}
	}
}

func TestQueryCancelled(t *testing.T) {
	ts := openTestStore(t, t.TempDir())
	var es []ledger.Entry
	for i := range 3000 {
		es = append(es, entry(fmt.Sprint(i), "u1", "doc", t0))
	}
	ts.apply(es)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := ts.eng.Stream(ctx, Request{Filter: Filter{ActorID: "u1"}}, func(Row) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 300 {
		t.Fatalf("stream after cancel: %d rows, %v", n, err)
	}
}

func TestTotalEstimated(t *testing.T) {
	ts := openTestStore(t, t.TempDir())
	for b := range 5 {
		var es []ledger.Entry
		for i := range 10000 {
			actor := "many"
			if i%2 == 1 {
				actor = fmt.Sprint("other", i)
			}
			es = append(es, entry(fmt.Sprint(b, "-", i), actor, "doc", t0.Add(time.Duration(b)*time.Second)))
		}
		ts.apply(es)
	}
	p, err := ts.eng.Query(context.Background(), Request{Filter: Filter{ActorID: "many"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.TotalEstimated || p.Total < 20000 || p.Total > 30000 {
		t.Fatalf("total %d estimated %v, want about 25000 estimated", p.Total, p.TotalEstimated)
	}
	p, err = ts.eng.Query(context.Background(), Request{Filter: Filter{ReceivedFrom: t0.Add(time.Second), ReceivedTo: t0.Add(3 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	if p.TotalEstimated || p.Total != 20000 {
		t.Fatalf("time-range total %d estimated %v, want exactly 20000", p.Total, p.TotalEstimated)
	}
}

// TestBucketsAndChunks: many request and resource ids share each bucket
// and large batches split chunks; every lookup, alone or joined, in both
// orders and small pages, matches the brute force.
func TestBucketsAndChunks(t *testing.T) {
	ts := openTestStore(t, t.TempDir())
	n := 0
	for b, size := range []int{1300, 7, 1, 900, 1} {
		var es []ledger.Entry
		for range size {
			e := entry(fmt.Sprint("e", n), fmt.Sprint("u", n%3), "doc", t0.Add(time.Duration(b)*time.Second))
			e.Context.RequestID = fmt.Sprint("req-", n%300)
			e.Action.ResourceID = fmt.Sprint("doc-", n%150)
			es = append(es, e)
			n++
		}
		ts.apply(es)
	}
	filters := []Filter{{ActorID: "u1"}, {RequestID: "req-none"}}
	for _, i := range []int{0, 1, 17, 150, 299} {
		filters = append(filters,
			Filter{RequestID: fmt.Sprint("req-", i)},
			Filter{ResourceID: fmt.Sprint("doc-", i%150), ActorID: "u2"},
			Filter{RequestID: fmt.Sprint("req-", i), ResourceID: fmt.Sprint("doc-", i%150)},
			Filter{ResourceID: fmt.Sprint("doc-", i%150), ReceivedFrom: t0.Add(time.Second), ReceivedTo: t0.Add(4 * time.Second)},
		)
	}
	for _, f := range filters {
		for _, desc := range []bool{false, true} {
			want := reference(t, ts.store, f, desc)
			if got := ts.all(Request{Filter: f, Descending: desc, Limit: 3}); !slices.Equal(got, want) {
				t.Errorf("filter %+v desc %v: got %v, want %v", f, desc, got, want)
			}
		}
	}
}

// TestStoredForms: a value with other stored forms (ciphertexts of a
// searchable encrypted field) matches entries holding any of them.
func TestStoredForms(t *testing.T) {
	ts := openTestStore(t, t.TempDir())
	var es []ledger.Entry
	for i := range 600 {
		e := entry(fmt.Sprint(i), fmt.Sprint("u", i%4), fmt.Sprint("r", i%3), t0)
		e.Context.RequestID = fmt.Sprint("req-", i%5)
		es = append(es, e)
	}
	ts.apply(es[:250])
	ts.apply(es[250:])
	var err error
	ts.eng, err = NewEngine(EngineOptions{Store: ts.store, CursorKey: []byte("k"), StoredForms: func(f Field, v string, _ *Filter) ([]string, error) {
		switch {
		case f == FieldActorID && v == "u0":
			return []string{"u2", "nobody"}, nil
		case f == FieldRequestID && v == "req-1":
			return []string{"req-3"}, nil
		}
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    Filter
		want func(i int) bool
	}{
		{Filter{ActorID: "u0"}, func(i int) bool { return i%4 == 0 || i%4 == 2 }},
		{Filter{ActorID: "u0", Resource: "r1"}, func(i int) bool { return (i%4 == 0 || i%4 == 2) && i%3 == 1 }},
		{Filter{RequestID: "req-1", ActorID: "u0"}, func(i int) bool { return (i%5 == 1 || i%5 == 3) && (i%4 == 0 || i%4 == 2) }},
		{Filter{ActorID: "u1"}, func(i int) bool { return i%4 == 1 }},
	} {
		for _, desc := range []bool{false, true} {
			var want []uint64
			for i := range es {
				if c.want(i) {
					want = append(want, uint64(i))
				}
			}
			if desc {
				slices.Reverse(want)
			}
			if got := ts.all(Request{Filter: c.f, Descending: desc, Limit: 11}); !slices.Equal(got, want) {
				t.Errorf("%+v desc %v: got %v, want %v", c.f, desc, got, want)
			}
		}
	}
}
