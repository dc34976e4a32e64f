package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Workload names (the --workload flag).
const (
	WorkloadAppend      = "append"       // single-event Append calls
	WorkloadAppendBatch = "append-batch" // AppendBatch of Batch events
	WorkloadAppendWait  = "append-wait"  // Append (or AppendBatch when Batch > 1) waiting for a checkpoint and proof
	WorkloadGet         = "get"          // GetEntry of random old entries
	WorkloadProve       = "prove"        // GetInclusionProof of random old entries, verified
	WorkloadQuery       = "query"        // Query RPC searches (a user's activity, denials, ...)
	WorkloadMixed       = "mixed"        // a weighted mix of the above (Mix)
)

// Workloads lists the workload names in the order the help shows them.
var Workloads = []string{WorkloadAppend, WorkloadAppendBatch, WorkloadAppendWait, WorkloadGet, WorkloadProve, WorkloadQuery, WorkloadMixed}

// ErrUnsupported is returned when the server lacks what a workload needs.
var ErrUnsupported = errors.New("bench: not supported by this server")

// ErrFailed is returned by Run, with the report, when the benchmark
// failed its correctness checks: acknowledged events lost, a checkpoint
// inconsistent with the first, or invalid proofs.
var ErrFailed = errors.New("bench: benchmark failed its checks")

// Config is one benchmark run. DefaultConfig gives the CLI's defaults;
// the zero value of most fields means "none" (no warm-up, no preload,
// closed loop).
type Config struct {
	Workload string
	// Mix weighs the kinds of a mixed workload, e.g.
	// "append=80,get=10,prove=10".
	Mix string
	// Batch is the events per AppendBatch (append-batch; append-wait and
	// mixed when > 1). 0: 1000 for append-batch, 1 otherwise.
	Batch int
	// Clients is the number of concurrent clients; Conns the number of
	// gRPC connections they share (0: min(Clients, 4)).
	Clients int
	Conns   int
	// Rate is the target of operations per second over all clients
	// (open loop; 0: closed loop, each client as fast as it can).
	Rate float64
	// Duration and Ops bound the measured phase; both may be set (first
	// reached wins). Neither: 10s.
	Duration time.Duration
	Ops      int64
	// Warmup runs the workload unmeasured before the measured phase.
	Warmup time.Duration
	// Preload appends this many events (batches of 1000) before the
	// warm-up. Reads need at least one entry: get and prove preload 1000
	// when the ledger is empty and Preload is 0.
	Preload int
	// EventSize is the wanted encoded size of an event (0: unpadded,
	// about 250 bytes). Seed makes the events reproducible.
	EventSize int
	Seed      uint64
	// Users is the size of the user population actors are drawn from
	// (Zipf; 0: DefaultUsers). Each new actor costs the server a data key
	// when field encryption is on.
	Users int
	// ClientIDs makes the client send event ids (unique per run), as an
	// idempotent client would; otherwise the server assigns them.
	ClientIDs bool
	// OpTimeout bounds one call (default 30s).
	OpTimeout time.Duration

	// Target: a running server (Addrs) or Embedded nodes started for the
	// run (1; 3 needs the cluster wiring, see startCluster).
	Addrs    []string
	Embedded int
	// Ledgerd is the ledgerd binary embedded servers run as (a separate
	// process, so that its CPU and RSS are its own). Empty: the server
	// runs inside this process (CPU and RSS then include the client).
	Ledgerd string
	// UnsafeNoSync starts embedded servers without fsync; a remote
	// server's setting is the operator's, and this flag only records it.
	UnsafeNoSync bool
	// DataDir holds the embedded servers' data (default: a temporary
	// directory, removed after the run unless KeepData).
	DataDir  string
	KeepData bool
	// VerifierKey is the note verifier key checkpoints are checked with.
	// Empty: the embedded server's own, or (remote) the one the server
	// sends, trusted on first use and flagged in the report.
	VerifierKey string

	// VerifyAllUpTo: when the final tree has at most this many entries,
	// the check reads every entry and recomputes the root (default
	// 2,000,000). Above it, VerifySample acknowledged appends (default
	// 10,000) are checked with inclusion proofs against the final
	// checkpoint.
	VerifyAllUpTo uint64
	VerifySample  int

	// JSON writes the report as one JSON object instead of the table.
	JSON bool
	// Command is the command line printed with the results.
	Command string
	// Progress receives the live progress line (a terminal); nil: none.
	Progress io.Writer
	// CPUProfile, when set, is where a CPU profile of this process during
	// the measured phase is written (with an in-process server it shows
	// the server's functions too).
	CPUProfile string
	Logger     *slog.Logger
	// DialOptions are added to the connections' (auth interceptors).
	DialOptions []grpc.DialOption

	clock Clock // tests only
}

// DefaultConfig is what the CLI starts from.
func DefaultConfig() Config {
	return Config{
		Workload:  WorkloadAppend,
		Mix:       "append=80,get=10,prove=10",
		Clients:   1,
		Warmup:    time.Second,
		Preload:   1000,
		EventSize: 300,
		Seed:      1,
		OpTimeout: 30 * time.Second,
	}
}

// kinds of operation; a workload is one kind, or a weighted mix.
type kind int

const (
	kAppend kind = iota
	kAppendBatch
	kAppendWait
	kGet
	kProve
	kQuery
	nKinds
)

var kindNames = [nKinds]string{WorkloadAppend, WorkloadAppendBatch, WorkloadAppendWait, WorkloadGet, WorkloadProve, WorkloadQuery}

func kindByName(s string) (kind, bool) {
	i := slices.Index(kindNames[:], s)
	return kind(i), i >= 0
}

// parseMix parses "append=80,get=10,prove=10" into cumulative weights.
func parseMix(s string) (weights [nKinds]int, err error) {
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		k, known := kindByName(strings.TrimSpace(name))
		n, perr := strconv.Atoi(strings.TrimSpace(w))
		if !ok || !known || perr != nil || n < 0 {
			return weights, fmt.Errorf("bench: mix %q: want kind=weight pairs with kinds among %s", s, strings.Join(kindNames[:], ", "))
		}
		weights[k] += n
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	if total == 0 {
		return weights, fmt.Errorf("bench: mix %q has no positive weight", s)
	}
	return weights, nil
}

// mixString renders weights in a stable order.
func mixString(w [nKinds]int) string {
	var parts []string
	for k, n := range w {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", kindNames[k], n))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// normalize checks cfg and fills in the defaults that depend on other
// fields. It returns the weights of the kinds to run.
func (c *Config) normalize() ([nKinds]int, error) {
	var w [nKinds]int
	switch c.Workload {
	case WorkloadMixed:
		var err error
		if w, err = parseMix(c.Mix); err != nil {
			return w, err
		}
	case "":
		return w, fmt.Errorf("bench: a workload is required (%s)", strings.Join(Workloads, ", "))
	default:
		k, ok := kindByName(c.Workload)
		if !ok {
			return w, fmt.Errorf("bench: unknown workload %q (%s)", c.Workload, strings.Join(Workloads, ", "))
		}
		w[k] = 1
	}
	if c.Batch < 0 || c.Clients < 0 || c.Conns < 0 || c.Rate < 0 || c.Duration < 0 || c.Ops < 0 || c.Warmup < 0 || c.Preload < 0 || c.EventSize < 0 || c.Users < 0 {
		return w, errors.New("bench: counts, rates and durations must not be negative")
	}
	if c.Batch == 0 {
		c.Batch = 1
		if c.Workload == WorkloadAppendBatch || w[kAppendBatch] > 0 {
			c.Batch = 1000
		}
	}
	if c.Batch > 1 && w[kAppendBatch] == 0 && w[kAppendWait] == 0 {
		return w, fmt.Errorf("bench: --batch applies to append-batch, append-wait and mixed, not %s", c.Workload)
	}
	if c.Batch > 10000 {
		return w, errors.New("bench: --batch is at most 10000 (the server's limit)")
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Conns == 0 {
		c.Conns = min(c.Clients, 4)
	}
	c.Conns = min(c.Conns, c.Clients)
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = 10 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 30 * time.Second
	}
	if c.VerifyAllUpTo == 0 {
		c.VerifyAllUpTo = 2_000_000
	}
	if c.VerifySample == 0 {
		c.VerifySample = 10_000
	}
	switch {
	case c.Embedded > 0 && len(c.Addrs) > 0:
		return w, errors.New("bench: give either an embedded server or --addr, not both")
	case c.Embedded == 0 && len(c.Addrs) == 0:
		return w, errors.New("bench: give a target: --embedded, --embedded-cluster N or --addr")
	case c.Embedded != 0 && c.Embedded != 1 && c.Embedded != 3:
		return w, fmt.Errorf("bench: an embedded cluster has 3 nodes, not %d", c.Embedded)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	return w, nil
}
