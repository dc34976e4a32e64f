package bench

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/auditledger/ledgerd/api"
)

func TestGeneratorDeterministicBySeed(t *testing.T) {
	for _, size := range []int{0, 300, 1000} {
		a, b, c := NewGenerator(42, size, 0), NewGenerator(42, size, 0), NewGenerator(43, size, 0)
		same := 0
		for i := range 2000 {
			ea, eb, ec := a.Next(), b.Next(), c.Next()
			if !proto.Equal(ea, eb) {
				t.Fatalf("size %d, event %d: same seed, different events:\n%v\n%v", size, i, ea, eb)
			}
			if proto.Equal(ea, ec) {
				same++
			}
		}
		if same > 0 {
			t.Errorf("size %d: seeds 42 and 43 gave %d identical events", size, same)
		}
	}
}

func TestGeneratorEventsAreValidVariedAndSized(t *testing.T) {
	for _, size := range []int{0, 300, 1000, 4000} {
		g := NewGenerator(7, size, 0)
		actors, resources, results := map[string]bool{}, map[string]bool{}, map[string]int{}
		total := 0
		const n = 5000
		for i := range n {
			e := g.Next()
			le := api.EventFromProto(e)
			if err := le.Validate(); err != nil {
				t.Fatalf("size %d, event %d is invalid: %v\n%v", size, i, err, e)
			}
			if g.LastSize() != proto.Size(e) {
				t.Fatalf("LastSize %d, proto.Size %d", g.LastSize(), proto.Size(e))
			}
			total += g.LastSize()
			actors[e.Actor.Id] = true
			resources[e.Action.Resource+"/"+e.Action.ResourceId] = true
			results[e.Action.Result]++
		}
		mean := float64(total) / n
		if size > 0 && (mean < 0.95*float64(size) || mean > 1.05*float64(size)) {
			t.Errorf("size %d: mean encoded size %.0f", size, mean)
		}
		t.Logf("size %d: mean %.0f B, %d actors, %d resources, results %v", size, mean, len(actors), len(resources), results)
		if len(actors) < 500 || len(resources) < 1000 {
			t.Errorf("size %d: too little variety: %d actors, %d resources in %d events", size, len(actors), len(resources), n)
		}
		if results["success"] < n*8/10 || results["failure"] == 0 || results["denied"] == 0 || results["error"] == 0 {
			t.Errorf("size %d: results %v, want mostly success and some of each other", size, results)
		}
	}
}

func TestSeedForSpreadsClients(t *testing.T) {
	seen := map[uint64]bool{}
	for seed := range uint64(4) {
		for i := range 64 {
			s := SeedFor(seed, i)
			if seen[s] {
				t.Fatalf("SeedFor(%d, %d) repeats a seed", seed, i)
			}
			seen[s] = true
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every bucket's upper edge maps back to it, and the next value to the next bucket.
	for i := range nBuckets - 1 {
		hi := bucketHigh(i)
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, high+1 to %d", i, hi, bucketOf(hi), bucketOf(hi+1))
		}
	}
	if bucketOf(^uint64(0)) != nBuckets-1 {
		t.Fatalf("max value in bucket %d, want %d", bucketOf(^uint64(0)), nBuckets-1)
	}
}

func TestHistogramQuantilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func() uint64{
		"uniform small": func() uint64 { return r.Uint64N(300) },
		"log-normal":    func() uint64 { return uint64(200_000 * (1 + r.ExpFloat64()*r.ExpFloat64())) },
		"bimodal":       func() uint64 { return []uint64{100_000, 50_000_000}[r.IntN(2)] + r.Uint64N(1000) },
		"huge":          func() uint64 { return r.Uint64() },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]uint64, 20011)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				rank := max(1, int(float64(len(vals))*q+0.999999999))
				exact := vals[min(rank, len(vals))-1]
				got := h.Quantile(q)
				if got < exact || float64(got-exact) > float64(exact)/256+1 {
					t.Errorf("q %v: got %d, exact %d (allowed up to +0.4%%)", q, got, exact)
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != uint64(len(vals)) {
				t.Errorf("max %d min %d count %d, want %d %d %d", h.Max(), h.Min(), h.Count(), vals[len(vals)-1], vals[0], len(vals))
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	whole := NewHistogram()
	parts := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	for i := range 30000 {
		v := uint64(r.ExpFloat64() * 1e6)
		whole.Record(v)
		parts[i%3].Record(v)
	}
	merged := NewHistogram()
	merged.Merge(NewHistogram()) // an empty one changes nothing
	for _, p := range parts {
		merged.Merge(p)
	}
	if !slices.Equal(merged.counts, whole.counts) || merged.Count() != whole.Count() ||
		merged.Max() != whole.Max() || merged.Min() != whole.Min() {
		t.Fatal("merged histogram differs from the one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.Quantile(q) != whole.Quantile(q) {
			t.Errorf("q %v: merged %d, whole %d", q, merged.Quantile(q), whole.Quantile(q))
		}
	}
	if e := NewHistogram(); e.Quantile(0.5) != 0 || e.Min() != 0 || e.Max() != 0 || e.Mean() != 0 {
		t.Error("an empty histogram reports non-zero values")
	}
}

// fakeClock moves only when asked: sleeping jumps to the wake-up time and
// the fake server advances it by its service time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}
func (f *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.now = t
	}
	return ctx.Err()
}

// runFake runs one client against a fake server whose calls take the
// given service times, and returns the latencies recorded and the send
// times.
func runFake(t *testing.T, s *Schedule, clk *fakeClock, service []time.Duration, stop func(time.Time) bool) (lat, sent []time.Duration) {
	t.Helper()
	i := 0
	do := func(context.Context) (int, int, error) {
		sent = append(sent, clk.Now().Sub(s.Start))
		clk.advance(service[min(i, len(service)-1)])
		i++
		return 0, 1, nil
	}
	record := func(_ int, l time.Duration, _ int, _ error) { lat = append(lat, l) }
	runClient(context.Background(), s, clk, stop, do, record)
	return lat, sent
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestScheduleOpenLoopChargesTheBacklog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	// 1000 ops/s, but the server takes 5 ms per call: each call is due
	// 1 ms after the previous one, and waits for its predecessors.
	s := &Schedule{Start: t0, Interval: time.Millisecond, MaxOps: 5}
	lat, sent := runFake(t, s, clk, ms(5), nil)
	if want := ms(5, 9, 13, 17, 21); !slices.Equal(lat, want) {
		t.Errorf("open-loop latencies %v, want %v (measured from the due time)", lat, want)
	}
	if want := ms(0, 5, 10, 15, 20); !slices.Equal(sent, want) {
		t.Errorf("sent at %v, want %v", sent, want)
	}
}

func TestScheduleOpenLoopWaitsForDueTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	// 100 ops/s with a fast server: sends are paced at 10 ms, and a
	// single stall of 35 ms is charged to the calls due meanwhile.
	s := &Schedule{Start: t0, Interval: 10 * time.Millisecond, End: t0.Add(60 * time.Millisecond)}
	lat, sent := runFake(t, s, clk, ms(1, 35, 1, 1, 1, 1), nil)
	if want := ms(0, 10, 45, 46, 47, 50); !slices.Equal(sent, want) {
		t.Errorf("sent at %v, want %v", sent, want)
	}
	if want := ms(1, 35, 26, 17, 8, 1); !slices.Equal(lat, want) {
		t.Errorf("latencies %v, want %v", lat, want)
	}
}

func TestScheduleClosedLoop(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	s := &Schedule{Start: t0, End: t0.Add(20 * time.Millisecond)}
	lat, sent := runFake(t, s, clk, ms(5, 35, 5), nil)
	if want := ms(5, 35); !slices.Equal(lat, want) {
		t.Errorf("closed-loop latencies %v, want %v (service time only)", lat, want)
	}
	if want := ms(0, 5); !slices.Equal(sent, want) {
		t.Errorf("sent at %v, want %v", sent, want)
	}
}

func TestScheduleHardStop(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	s := &Schedule{Start: t0, Interval: time.Millisecond, MaxOps: 100}
	stop := func(now time.Time) bool { return !now.Before(t0.Add(12 * time.Millisecond)) }
	lat, _ := runFake(t, s, clk, ms(5), stop)
	if len(lat) != 3 { // sent at 0, 5, 10; at 15 the hard stop has passed
		t.Errorf("%d calls before the hard stop, want 3", len(lat))
	}
}

func TestScheduleNextIsShared(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := &Schedule{Start: t0, Interval: time.Microsecond, MaxOps: 10000}
	var mu sync.Mutex
	seen := map[time.Time]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, ok := s.Next(t0)
				if !ok {
					return
				}
				mu.Lock()
				if seen[due] {
					t.Errorf("due time %v handed out twice", due)
				}
				seen[due] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 10000 {
		t.Errorf("%d operations handed out, want 10000", len(seen))
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		bad  bool
	}{
		{in: "append=80,get=10,prove=10", want: "append=80,get=10,prove=10"},
		{in: " append-batch = 1 , append=1", want: "append-batch=1,append=1"},
		{in: "append=0", bad: true},
		{in: "nope=3", bad: true},
		{in: "append", bad: true},
		{in: "append=-1", bad: true},
	} {
		w, err := parseMix(tc.in)
		if tc.bad != (err != nil) {
			t.Errorf("parseMix(%q): err %v", tc.in, err)
			continue
		}
		if !tc.bad && mixString(w) != tc.want {
			t.Errorf("parseMix(%q) = %s, want %s", tc.in, mixString(w), tc.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"ledgerctl", "bench", "--mix", "append=1,get=2", "--addr", "a b", "it's", ""})
	want := `ledgerctl bench --mix append=1,get=2 --addr 'a b' 'it'\''s' ''`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
