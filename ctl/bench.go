package ctl

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/auditledger/ledgerd/bench"
)

// newBenchCmd binds package bench to flags; everything else is in bench.
func newBenchCmd(g *globals) *cobra.Command {
	cfg := bench.DefaultConfig()
	var (
		addrs    []string
		inproc   bool
		embedded bool
		cluster  int
		key      string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a ledger and measure throughput, latency and resource use",
		Long: `Run a benchmark workload against a running ledgerd (--addr, several
allowed) or one started for the run (--embedded: one node in a temporary
directory; --embedded-cluster 3: three nodes on loopback), fsync on unless
--unsafe-nosync (printed in the report).

Workloads: append (single events), append-batch (--batch events a call),
append-wait (wait for a checkpoint and verify the inclusion proof), get
(random old entries), prove (inclusion proofs of random old entries, verified
against the first checkpoint), query (Query RPC searches: a user's activity,
denials, an application's events; entries checked against the filter), mixed
(--mix).

--rate N runs open loop: operation i is due at start + i/N whatever happened
before, and latency counts from that due time, so a stalling server is not
hidden by clients that politely wait (coordinated omission). Without --rate
each client sends as soon as its last call returned (closed loop).

Phases: preload (--preload events in batches of 1000), warm-up (--warmup,
not measured), the measured phase (--duration and/or --ops), then the check:
every acknowledged append is read back (all of them, with the tree's root
recomputed, up to --verify-all-up-to entries; an inclusion-proven sample
beyond) and the final checkpoint must be consistent with the first. A run
that loses events or gets an invalid proof fails with exit status 1.

The embedded server runs as a separate ledgerd process (--ledgerd, default:
next to ledgerctl, then $PATH) so that its CPU time and peak RSS are its own;
--inproc runs it inside ledgerctl instead (then they include the client).

The report (a table, or one JSON object with --json) prints the command line
that reproduces it. Live progress goes to stderr when it is a terminal.`,
		Example: `  ledgerctl bench --embedded --workload append --clients 32 --duration 10s
  ledgerctl bench --embedded --workload append-batch --batch 1000 --json
  ledgerctl bench --addr 127.0.0.1:7070 --workload prove --rate 5000 --duration 30s
  ledgerctl bench --embedded --workload mixed --mix append=70,get=20,prove=10 --clients 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if f.Changed("embedded-cluster") && embedded {
				return errors.New("--embedded and --embedded-cluster exclude each other")
			}
			switch {
			case f.Changed("embedded-cluster"):
				cfg.Embedded = cluster
			case embedded:
				cfg.Embedded = 1
			}
			for _, a := range addrs {
				for p := range strings.SplitSeq(a, ",") {
					if p = strings.TrimSpace(p); p != "" {
						cfg.Addrs = append(cfg.Addrs, p)
					}
				}
			}
			if cfg.Embedded == 0 && len(cfg.Addrs) == 0 {
				cfg.Addrs = []string{g.addr} // LEDGER_ADDR or the default
			}
			if cfg.Embedded > 0 && !inproc && cfg.Ledgerd == "" {
				if cfg.Ledgerd = bench.FindLedgerd(); cfg.Ledgerd == "" {
					if cfg.Embedded > 1 {
						return errors.New("--embedded-cluster runs ledgerd processes: build it (make build) or give --ledgerd")
					}
					fmt.Fprintln(g.stderr, "ledgerctl bench: no ledgerd binary found (--ledgerd); the server runs inside ledgerctl, so its CPU and RSS include the client")
				}
			}
			if inproc {
				cfg.Ledgerd = ""
			}
			if key != "" {
				if _, err := note.NewVerifier(strings.TrimSpace(key)); err == nil {
					cfg.VerifierKey = strings.TrimSpace(key)
				} else if b, err := os.ReadFile(key); err == nil {
					cfg.VerifierKey = strings.TrimSpace(string(b))
				} else {
					return fmt.Errorf("--key %q is neither a verifier key nor a readable file", key)
				}
			}
			if g.token == "" {
				g.token = g.getenv("LEDGER_TOKEN")
			}
			if g.token != "" {
				cfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(g.unaryInterceptor)}
			}
			cfg.Command = bench.CommandLine(append([]string{"ledgerctl"}, os.Args[1:]...))
			if isTerminal(g.stderr) {
				cfg.Progress = g.stderr
			}
			_, err := bench.Run(cmd.Context(), cfg, g.stdout)
			if errors.Is(err, bench.ErrFailed) {
				return fmt.Errorf("%w: %v", errVerify, err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&embedded, "embedded", false, "start one node for the run, in a temporary directory")
	f.IntVar(&cluster, "embedded-cluster", 0, "start a cluster of N (3) nodes on loopback for the run")
	f.StringArrayVar(&addrs, "addr", nil, "ledgerd gRPC address of a running server; repeat (or separate with commas) for several nodes (default $LEDGER_ADDR or "+DefaultAddr+")")
	f.StringVar(&cfg.Workload, "workload", cfg.Workload, "workload: "+strings.Join(bench.Workloads, ", "))
	f.StringVar(&cfg.Mix, "mix", cfg.Mix, "kinds and weights of the mixed workload")
	f.IntVar(&cfg.Batch, "batch", 0, "events per AppendBatch (default 1000 for append-batch, 1 otherwise)")
	f.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients")
	f.IntVar(&cfg.Conns, "conns", 0, "gRPC connections the clients share (default min(clients, 4), at least one per address)")
	f.Float64Var(&cfg.Rate, "rate", 0, "target operations per second over all clients, open loop (default: closed loop)")
	f.DurationVar(&cfg.Duration, "duration", 0, "length of the measured phase (default 10s unless --ops)")
	f.Int64Var(&cfg.Ops, "ops", 0, "operations in the measured phase (with --duration: whichever ends first)")
	f.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured warm-up before the measured phase")
	f.IntVar(&cfg.Preload, "preload", cfg.Preload, "events appended (batches of 1000) before the warm-up")
	f.IntVar(&cfg.EventSize, "event-size", cfg.EventSize, "encoded size of an event in bytes (0: unpadded, about 300)")
	f.IntVar(&cfg.Users, "users", 0, "size of the user population actors are drawn from (Zipf; default 50000); each new actor costs the server a data key")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the event generator and of the random reads")
	f.BoolVar(&cfg.ClientIDs, "client-ids", false, "send event ids (unique per run), as an idempotent client does")
	f.BoolVar(&cfg.UnsafeNoSync, "unsafe-nosync", false, "embedded servers commit without fsync (reported; for a remote server, say that it runs so)")
	f.BoolVar(&cfg.JSON, "json", false, "write the report as one JSON object")
	f.StringVar(&cfg.Ledgerd, "ledgerd", "", "ledgerd binary for embedded servers (default: next to ledgerctl, then $PATH)")
	f.BoolVar(&inproc, "inproc", false, "run the embedded node inside ledgerctl (CPU and RSS then include the client)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory of embedded servers (default: a temporary one, removed after)")
	f.BoolVar(&cfg.KeepData, "keep-data", false, "keep the temporary data directory")
	f.StringVar(&key, "key", "", "checkpoint verifier key, or a file holding it (default: the embedded server's, or the server's word)")
	f.DurationVar(&cfg.OpTimeout, "op-timeout", cfg.OpTimeout, "deadline of each call")
	f.Uint64Var(&cfg.VerifyAllUpTo, "verify-all-up-to", 2_000_000, "read back every entry when the tree has at most this many")
	f.IntVar(&cfg.VerifySample, "verify-sample", 10_000, "acknowledged appends proven after larger runs")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of ledgerctl during the measured phase (with --inproc it covers the server)")
	return cmd
}
