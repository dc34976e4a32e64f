// Package bench is the load generator and benchmark harness of ledgerd:
// workloads as a Config, one Run function, and the report they produce.
// `ledgerctl bench` binds it to flags; `make bench` runs a standard suite
// through that command (bench/cmd/benchsuite).
//
// To run a benchmark:
//
//  1. Start from DefaultConfig() and set the Workload (append,
//     append-batch, append-wait, get, prove, query, mixed), the target
//     (Embedded nodes started for the run, or the Addrs of a running
//     server) and the load: Clients and Conns, Rate (open loop) or none
//     (closed loop), Duration and/or Ops, Batch, EventSize, Seed.
//  2. Run(ctx, cfg, out) starts the target, generates a pool of events,
//     preloads, warms up, measures, checks and writes the report (a table,
//     or JSON) to out. It returns the Report; the error wraps ErrFailed
//     when the checks failed (the report is written all the same).
//     Cancelling ctx ends the measured phase early; the checks still run.
//  3. Run stops everything it started (server processes, connections,
//     goroutines) before it returns and removes a temporary data dir.
//
// # What is measured, and how
//
// Latency is the time from an operation's due time to its answer, in a
// log-linear histogram per client (Histogram: buckets 0.4% wide, merged at
// the end). With a Rate the schedule is open loop (Schedule): operation i
// is due at start + i/Rate whatever happened before, so a server that
// stalls is charged for every operation that should have been sent
// meanwhile; without one each client sends when its last call returned
// (closed loop), which measures service time only.
//
// Events come from a Generator: seeded, realistic audit events (users,
// services and API keys acting on documents, payments, patient records,
// ...; Zipf-skewed users and resources; mostly successful results) padded
// to EventSize. A pool is generated before the run and each user event
// gets a user drawn afresh (Users), so that generating costs the client
// little during the run while actors keep arriving as they would.
//
// An embedded server runs as a ledgerd process (Config.Ledgerd) so that
// its CPU time (/proc/<pid>/stat over the measured phase) and peak RSS
// (wait4's rusage) are its own and not the load generator's; without the
// binary it runs in this process and the report says that the figures are
// the process's. Disk use is read after the server stopped.
//
// # What is checked
//
// Every acknowledged append is recorded (index and leaf hash prefix).
// After the run the final checkpoint must be consistent with the first
// (taken after the preload) on every node, and each acknowledged append
// must be stored at its index: up to VerifyAllUpTo entries every entry is
// read back and the tree's root recomputed from them and compared with
// the signed one; beyond, a sample is proven with inclusion proofs against
// the final checkpoint. Responses are verified as they come (batch
// checksums, inclusion proofs of append-wait and prove, leaf hashes of
// get). A lost event, an inconsistent checkpoint or an invalid proof
// fails the run.
//
// Run is not safe for concurrent use with the same Config; distinct runs
// may proceed concurrently.
package bench
