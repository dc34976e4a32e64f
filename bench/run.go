package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/api/wire"
	"github.com/auditledger/ledgerd/ledger"
)

// poolSize is how many events are generated before the run; clients walk
// the pool from different offsets and give each user event a user freshly
// drawn from the population (so the set of actors keeps growing as it
// would, which matters to per-subject keys). Generating whole events
// during the run would charge the client's CPU (which shares the machine
// with an embedded server) and the latency of big batches.
const poolSize = 16384

// preloadBatch is the batch size of the preload.
const preloadBatch = 1000

// Run runs one benchmark: it starts or reaches the target, preloads,
// warms up, measures, checks that every acknowledged append is stored and
// that the log only grew, and writes the report to out (JSON with
// cfg.JSON, else a table). It returns the report; the error is ErrFailed
// (wrapped) when the checks failed, with the report still written.
// Cancelling ctx ends the measured phase early; the checks still run.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	weights, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Command == "" {
		cfg.Command = CommandLine(os.Args)
	}
	rep := &Report{
		Workload:  cfg.Workload,
		Command:   cfg.Command,
		StartedAt: time.Now().UTC().Truncate(time.Second),
		Machine:   thisMachine(),
	}
	r := &runner{cfg: &cfg, rep: rep, progress: cfg.Progress}

	t, err := startTarget(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	stopped := false
	stopTarget := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return t.stop(sctx)
	}
	defer func() {
		stopTarget()
		if t.removeDir != "" {
			os.RemoveAll(t.removeDir)
		}
	}()
	r.t = t
	if err := r.connect(); err != nil {
		return nil, err
	}
	defer r.closeConns()

	s, err := r.setup(ctx, weights)
	if err != nil {
		return nil, err
	}
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		clients[i] = newClient(s, i, r.apis[i%len(r.apis)], r.qapis[i%len(r.qapis)])
	}

	// A context that survives ^C for the preload's end, the checks and
	// the report.
	bg := context.WithoutCancel(ctx)
	first, err := r.preload(ctx, s, clients, weights)
	if err != nil {
		return nil, err
	}
	s.pinned.Store(first)

	if cfg.Warmup > 0 && ctx.Err() == nil {
		r.phase(ctx, "warm-up", clients, cfg.Warmup, 0, false)
	}
	r.measure(ctx, clients)

	// Checks.
	all := &acks{}
	var ids []idAck
	var dups int64
	for _, c := range clients {
		all.merge(&c.acks)
		ids = append(ids, c.ids...)
		dups += c.duplicates
	}
	sort.Sort(all)
	k := &checker{s: s, apis: r.nodeAPIs}
	if r.progress != nil {
		k.progress = func(done, total uint64) {
			fmt.Fprintf(r.progress, "\r%-9s %d/%d entries   ", "check", done, total)
		}
	}
	check, final := k.run(bg, first, all, ids)
	if r.progress != nil {
		fmt.Fprintln(r.progress)
	}
	check.Duplicates = dups
	check.VerifierKey = r.vkeySource
	rep.Check = check
	if final != nil {
		rep.TreeSize = final.Size
	}

	// Stop the embedded servers, then read what they used. A cluster's
	// nodes first get a quiet moment: each buffers its self-audit records
	// of API reads for up to 200ms and commits them through the leader,
	// which needs a quorum; stopped together with records still buffered,
	// the last node waits for a quorum until its shutdown deadline.
	if len(t.procs) > 1 {
		time.Sleep(500 * time.Millisecond)
	}
	if err := stopTarget(); err != nil {
		// Not a failure of the run's checks, but worth seeing.
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("stopping the embedded server: %v", err))
	}
	switch t.mode {
	case ModeSubprocess:
		if _, peak, ok := t.finalUsage(); ok {
			rep.ServerPeakRSSBytes = peak
		}
	case ModeInProcess:
		_, rep.ServerPeakRSSBytes = selfUsage()
	}
	if t.mode != ModeRemote {
		if d, a, err := diskUsage(t.dirs); err == nil {
			rep.DiskBytes, rep.DiskAllocatedBytes = d, a
			if rep.TreeSize > 0 {
				rep.BytesPerEvent = float64(d) / float64(rep.TreeSize)
			}
		}
	}

	r.finish()
	if cfg.JSON {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteText(out)
	}
	if err != nil {
		return rep, err
	}
	if !rep.Passed {
		return rep, fmt.Errorf("%w: %s", ErrFailed, strings.Join(rep.Check.Failures, "; "))
	}
	return rep, nil
}

// runner holds one run's connections and results.
type runner struct {
	cfg      *Config
	rep      *Report
	t        *target
	progress io.Writer

	conns    []*grpc.ClientConn
	apis     []pb.LedgerClient // one per connection
	qapis    []pb.QueryClient  // one per connection
	nodeAPIs []pb.LedgerClient // one per address

	vkeySource string
	clients    []*client
}

func (r *runner) connect() error {
	addrs := r.t.addrs
	n := max(r.cfg.Conns, len(addrs))
	for i := range n {
		opts := append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20), grpc.ForceCodecV2(wire.Client())),
			// Static flow-control windows: the default bandwidth-delay
			// estimator PINGs the server once per call of a client that
			// waits for each call (see node/transport.go), an extra
			// frame each way timed as part of the calls.
			grpc.WithStaticStreamWindowSize(8 << 20),
			grpc.WithStaticConnWindowSize(16 << 20),
		}, r.cfg.DialOptions...)
		if r.t.token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer(r.t.token)))
		}
		cc, err := grpc.NewClient(addrs[i%len(addrs)], opts...)
		if err != nil {
			r.closeConns()
			return fmt.Errorf("bench: connect to %s: %w", addrs[i%len(addrs)], err)
		}
		r.conns = append(r.conns, cc)
		r.apis = append(r.apis, pb.NewLedgerClient(cc))
		r.qapis = append(r.qapis, pb.NewQueryClient(cc))
		if i < len(addrs) {
			r.nodeAPIs = append(r.nodeAPIs, r.apis[i])
		}
	}
	r.cfg.Conns = n
	return nil
}

func (r *runner) closeConns() {
	for _, cc := range r.conns {
		cc.Close()
	}
	r.conns = nil
}

// setup builds the shared state: the event pool and the checkpoint
// verifier.
func (r *runner) setup(ctx context.Context, weights [nKinds]int) (*shared, error) {
	cfg := r.cfg
	s := &shared{cfg: cfg, weights: weights}
	for _, w := range weights {
		s.total += w
	}
	var id [6]byte
	rand.Read(id[:])
	s.runID = "bench-" + hex.EncodeToString(id[:])

	g := NewGenerator(cfg.Seed, cfg.EventSize, cfg.Users)
	s.pool = make([]*pb.Event, poolSize)
	var bytes int
	for i := range s.pool {
		s.pool[i] = g.Next()
		bytes += g.LastSize()
	}

	// The verifier key: given, the embedded server's, or the server's
	// word (trust on first use).
	vkey := cfg.VerifierKey
	r.vkeySource = "given"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.nodeAPIs[0].GetCheckpoint(cctx, &pb.GetCheckpointRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("bench: get the first checkpoint from %s: %w", r.t.addrs[0], err)
	}
	switch {
	case vkey != "":
	case r.t.vkey != "":
		vkey, r.vkeySource = r.t.vkey, "embedded"
	default:
		vkey, r.vkeySource = resp.VerifierKey, "server (trust on first use)"
	}
	if s.verifier, err = note.NewVerifier(vkey); err != nil {
		return nil, fmt.Errorf("bench: verifier key %q: %w", vkey, err)
	}
	cp, err := ledger.OpenCheckpoint(resp.GetCheckpoint().GetNote(), s.verifier, "")
	if err != nil {
		return nil, fmt.Errorf("bench: the server's checkpoint: %w", err)
	}
	s.origin = cp.Origin
	s.pinned.Store(cp)
	if weights[kQuery] > 0 {
		_, err := pb.NewQueryClient(r.conns[0]).Query(cctx, &pb.QueryRequest{Filter: &pb.QueryFilter{Result: "denied"}, Limit: 1, SkipTotal: true})
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("%w: workload query needs the Query service, which %s does not serve", ErrUnsupported, r.t.addrs[0])
		}
	}

	st := &r.rep.Setup
	st.Target = "remote"
	if cfg.Embedded == 1 {
		st.Target = "embedded"
	} else if cfg.Embedded > 1 {
		st.Target = "embedded-cluster"
	}
	st.Nodes = len(r.t.addrs)
	st.Addrs = r.t.addrs
	st.UnsafeNoSync = cfg.UnsafeNoSync
	st.Clients, st.Conns, st.Batch, st.Rate = cfg.Clients, cfg.Conns, cfg.Batch, cfg.Rate
	if cfg.Workload == WorkloadMixed {
		st.Mix = mixString(weights)
	}
	if cfg.Duration > 0 {
		st.DurationLimit = cfg.Duration.String()
	}
	st.OpsLimit = cfg.Ops
	st.WarmupSeconds = cfg.Warmup.Seconds()
	st.Seed, st.ClientIDs, st.EventSize = cfg.Seed, cfg.ClientIDs, cfg.EventSize
	st.EventBytes = float64(bytes) / float64(len(s.pool))
	r.rep.ServerMode = r.t.mode
	return s, nil
}

// preload appends cfg.Preload events in batches (more when reads need
// entries and the ledger is empty) and returns the first checkpoint: the
// one the final checkpoint must be consistent with, and the one reads
// prove against.
func (r *runner) preload(ctx context.Context, s *shared, clients []*client, weights [nKinds]int) (*ledger.Checkpoint, error) {
	n := r.cfg.Preload
	if (weights[kGet] > 0 || weights[kProve] > 0 || weights[kQuery] > 0) && n == 0 && s.pinned.Load().Size == 0 {
		n = 1000
	}
	r.rep.Setup.Preload = n
	if n > 0 {
		var next atomic.Int64
		var firstErr atomic.Pointer[error]
		var wg sync.WaitGroup
		start := time.Now()
		stop := r.startProgress("preload", start, 0, int64(n), &s.events, "events", &s.errs)
		for _, c := range clients[:min(len(clients), 4)] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && firstErr.Load() == nil {
					i := next.Add(preloadBatch) - preloadBatch
					if i >= int64(n) {
						return
					}
					cnt := int(min(preloadBatch, int64(n)-i))
					octx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
					got, err := c.appendBatch(octx, cnt, false)
					cancel()
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					s.events.Add(int64(got))
				}
			}()
		}
		wg.Wait()
		stop()
		if p := firstErr.Load(); p != nil {
			return nil, fmt.Errorf("bench: preload: %w", *p)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.events.Store(0)
	}
	// The first checkpoint covers the preload.
	known := &acks{}
	for _, c := range clients {
		known.merge(&c.acks)
	}
	sort.Sort(known)
	s.known = known
	need := s.pinned.Load().Size
	if k := len(known.idx); k > 0 {
		need = max(need, known.idx[k-1]+1)
	}
	// Every node must hold it: reads go to all of them, and a follower
	// learns of commits up to a heartbeat later.
	ck := &checker{s: s}
	var first *ledger.Checkpoint
	for i, api := range r.nodeAPIs {
		cp, err := ck.waitCheckpoint(ctx, api, need)
		if err != nil {
			return nil, fmt.Errorf("bench: node %s: %w", r.t.addrs[i], err)
		}
		if first == nil {
			first = cp
		}
	}
	return first, nil
}

// usageSnap is resource use at the start of the measured phase.
type usageSnap struct {
	self   time.Duration
	server time.Duration
	srvOK  bool
}

func (r *runner) snapUsage() usageSnap {
	var u usageSnap
	u.self, _ = selfUsage()
	u.server, _, u.srvOK = r.t.usage()
	return u
}

// measure runs the measured phase and keeps its figures in the report.
func (r *runner) measure(ctx context.Context, clients []*client) {
	cfg := r.cfg
	for _, c := range clients {
		c.record = true
	}
	r.clients = clients
	if cfg.CPUProfile != "" {
		if f, err := os.Create(cfg.CPUProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			} else {
				f.Close()
			}
		}
	}
	u0 := r.snapUsage()
	elapsed, notSent := r.phase(ctx, "measure", clients, cfg.Duration, cfg.Ops, true)
	u1 := r.snapUsage()
	for _, c := range clients {
		c.record = false
	}
	rep := r.rep
	rep.DurationSeconds = elapsed.Seconds()
	rep.NotSent = notSent
	switch r.t.mode {
	case ModeSubprocess:
		if u0.srvOK && u1.srvOK {
			rep.ServerCPUSeconds = (u1.server - u0.server).Seconds()
		}
		rep.ClientCPUSeconds = (u1.self - u0.self).Seconds()
	case ModeInProcess:
		rep.ServerCPUSeconds = (u1.self - u0.self).Seconds()
	default:
		rep.ClientCPUSeconds = (u1.self - u0.self).Seconds()
	}
	if _, peak, ok := r.t.usage(); ok {
		rep.ServerPeakRSSBytes = peak
	}
}

// phase runs the clients for one phase and returns its wall time and, in
// open loop, how many due operations were never sent.
func (r *runner) phase(ctx context.Context, name string, clients []*client, dur time.Duration, ops int64, record bool) (time.Duration, int64) {
	cfg := r.cfg
	clk := cfg.clock
	start := clk.Now()
	s := &Schedule{Start: start, MaxOps: ops}
	if dur > 0 {
		s.End = start.Add(dur)
	}
	var hardStop time.Time
	if cfg.Rate > 0 {
		s.Interval = time.Duration(float64(time.Second) / cfg.Rate)
		planned := dur
		if ops > 0 && (dur == 0 || time.Duration(ops)*s.Interval < dur) {
			planned = time.Duration(ops) * s.Interval
		}
		// A server that falls behind is given a quarter more time (at
		// least 5s) to drain the backlog; what is still due then is
		// reported as not sent.
		hardStop = start.Add(planned + max(planned/4, 5*time.Second))
	}
	sh := clients[0].s
	sh.ops.Store(0)
	sh.events.Store(0)
	sh.errs.Store(0)
	stopProgress := r.startProgress(name, start, dur, ops, &sh.ops, "ops", &sh.errs)
	stopTimeline := func() {}
	if record {
		stopTimeline = r.sampleTimeline(sh)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stop func(time.Time) bool
			if !hardStop.IsZero() {
				stop = func(now time.Time) bool { return !now.Before(hardStop) }
			}
			runClient(ctx, s, clk, stop, c.do, c.account)
		}()
	}
	wg.Wait()
	elapsed := clk.Now().Sub(start)
	stopTimeline()
	stopProgress()
	var notSent int64
	if s.Interval > 0 && ctx.Err() == nil {
		due := int64(math.MaxInt64)
		if ops > 0 {
			due = ops
		}
		if dur > 0 {
			due = min(due, int64((dur+s.Interval-1)/s.Interval))
		}
		notSent = max(0, due-sh.ops.Load())
	}
	return elapsed, notSent
}

// sampleTimeline records the events and operations finished in each
// second of the measured phase (stalls and slow-downs as the store grows
// show there, not in the averages) until the returned func is called.
func (r *runner) sampleTimeline(sh *shared) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		var lastOps, lastEv, lastErr int64
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			o, e, x := sh.ops.Load(), sh.events.Load(), sh.errs.Load()
			if len(r.rep.Timeline) < maxTimeline {
				r.rep.Timeline = append(r.rep.Timeline, Second{Ops: o - lastOps, Events: e - lastEv, Errors: x - lastErr})
			}
			lastOps, lastEv, lastErr = o, e, x
		}
	}()
	return func() { close(done); wg.Wait() }
}

// maxTimeline bounds the timeline (an hour).
const maxTimeline = 3600

// startProgress prints a progress line every half second until the
// returned func is called.
// count is what the line counts (events in the preload, operations
// otherwise), named unit.
func (r *runner) startProgress(name string, start time.Time, dur time.Duration, limit int64, count *atomic.Int64, unit string, errs *atomic.Int64) func() {
	if r.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		var lastN int64
		last := start
		line := func(final bool) {
			now := time.Now()
			el := now.Sub(start)
			n := count.Load()
			rate := float64(n-lastN) / now.Sub(last).Seconds()
			if final {
				rate = float64(n) / el.Seconds()
			}
			lastN, last = n, now
			frac := -1.0
			switch {
			case dur > 0:
				frac = el.Seconds() / dur.Seconds()
			case limit > 0:
				frac = float64(n) / float64(limit)
			}
			bar := ""
			if frac >= 0 {
				w := int(min(frac, 1) * 20)
				bar = "[" + strings.Repeat("=", w) + strings.Repeat(" ", 20-w) + "] "
			}
			fmt.Fprintf(r.progress, "\r%-9s %s%6.1fs  %d %s  %.0f/s  errors %d   ", name, bar, el.Seconds(), n, unit, rate, errs.Load())
		}
		for {
			select {
			case <-tk.C:
				line(false)
			case <-done:
				line(true)
				fmt.Fprintln(r.progress)
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// finish merges the clients' figures into the report.
func (r *runner) finish() {
	rep := r.rep
	all := NewHistogram()
	byKind := map[string]KindReport{}
	rep.ErrorsByCode = map[string]int64{}
	rep.ErrorSamples = map[string]string{}
	var hk [nKinds]*Histogram
	var kr [nKinds]KindReport
	for _, c := range r.clients {
		for k := range nKinds {
			if c.hist[k] == nil {
				continue
			}
			all.Merge(c.hist[k])
			if hk[k] == nil {
				hk[k] = NewHistogram()
			}
			hk[k].Merge(c.hist[k])
			kr[k].Ops += c.ops[k]
			kr[k].Events += c.events[k]
			kr[k].Errors += c.errsK[k]
			rep.Ops += c.ops[k]
			rep.Events += c.events[k]
		}
		for code, n := range c.errs {
			rep.ErrorsByCode[code] += n
			rep.Errors += n
			if _, ok := rep.ErrorSamples[code]; !ok {
				rep.ErrorSamples[code] = c.firstE[code]
			}
		}
	}
	for k := range nKinds {
		if hk[k] == nil {
			continue
		}
		kr[k].LatencyMs = latencyOf(hk[k])
		byKind[kindNames[k]] = kr[k]
	}
	rep.LatencyMs = latencyOf(all)
	if len(byKind) > 1 {
		rep.ByKind = byKind
	}
	if rep.Events > 0 {
		rep.ServerCPUMicrosPerEvent = rep.ServerCPUSeconds * 1e6 / float64(rep.Events)
	}
	if rep.DurationSeconds > 0 {
		rep.OpsPerSecond = float64(rep.Ops) / rep.DurationSeconds
		rep.EventsPerSecond = float64(rep.Events) / rep.DurationSeconds
	}
	rep.LostEvents = rep.Check.Lost
	// Responses that failed client-side verification fail the run.
	for _, code := range slices.Sorted(maps.Keys(rep.ErrorsByCode)) {
		if checkCodes[code] {
			rep.Check.failf("%d responses failed verification or reported corrupt data (%s)", rep.ErrorsByCode[code], code)
		}
	}
	if len(rep.ErrorSamples) == 0 {
		rep.ErrorSamples = nil
	}
	rep.Passed = rep.LostEvents == 0 && len(rep.Check.Failures) == 0
}

// checkCodes are the error codes that fail a run: client-side
// verification failures, and DataLoss, the server's own word that it
// found its data corrupt.
var checkCodes = map[string]bool{"BadResponse": true, "BadChecksum": true, "InvalidProof": true, "InvalidCheckpoint": true, "WrongLeaf": true, "WrongResult": true, "DataLoss": true}

// CommandLine renders argv as a shell command line.
func CommandLine(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
