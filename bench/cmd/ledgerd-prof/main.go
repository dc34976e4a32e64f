// Command ledgerd-prof is a single ledgerd node that profiles itself: a
// stand-in for ledgerd under `ledgerctl bench --embedded --ledgerd
// ledgerd-prof`, so that a CPU profile shows the server alone (the load
// generator runs in its own process).
//
// It takes the flags bench gives an embedded server (--data-dir,
// --grpc-addr, --http-addr, --origin, --log-format, --log-level,
// --unsafe-nosync, and for --embedded-cluster --node-id, --raft-addr,
// --bootstrap, --join; and --cluster-token-file, so that
// scripts/cluster.sh can start it from a directory where it is named ledgerd) and writes, into $LEDGERD_PROF_DIR (default: the
// data directory), cpu.prof from start to SIGTERM, and mutex.prof,
// block.prof and heap.prof at SIGTERM. A cluster node prefixes its files
// with its node id (node1-cpu.prof, ...), so three processes sharing one
// $LEDGERD_PROF_DIR do not overwrite each other's:
//
//	go build -o bin/ledgerd-prof ./bench/cmd/ledgerd-prof
//	LEDGERD_PROF_DIR=/tmp/prof bin/ledgerctl bench --embedded --ledgerd bin/ledgerd-prof --workload append --clients 32
//	go tool pprof -top bin/ledgerd-prof /tmp/prof/cpu.prof
//	LEDGERD_PROF_DIR=/tmp/prof bin/ledgerctl bench --embedded-cluster 3 --ledgerd bin/ledgerd-prof --workload append-batch
//	go tool pprof -top bin/ledgerd-prof /tmp/prof/node*-cpu.prof   (the three merged)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/auditledger/ledgerd/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg := node.Defaults()
	if path := os.Getenv("LEDGERD_PROF_CONFIG"); path != "" {
		// A JSON config under the flags, e.g. to profile with field
		// encryption off: {"security":{"encryption":{"disabled":true}}}.
		var err error
		if cfg, err = node.LoadConfig(path); err != nil {
			fmt.Fprintln(stderr, "ledgerd-prof:", err)
			return 2
		}
	}
	fs := flag.NewFlagSet("ledgerd-prof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP listen address")
	fs.StringVar(&cfg.Origin, "origin", "", "checkpoint origin")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&cfg.UnsafeNoSync, "unsafe-nosync", false, "commit without fsync")
	fs.StringVar(&cfg.Cluster.NodeID, "node-id", "", "cluster: this node's id")
	fs.StringVar(&cfg.Cluster.RaftAddr, "raft-addr", "", "cluster: Raft listen address")
	fs.BoolVar(&cfg.Cluster.Bootstrap, "bootstrap", false, "cluster: start a new cluster")
	fs.StringVar(&cfg.Cluster.Join, "join", "", "cluster: join through this member's gRPC address")
	fs.StringVar(&cfg.Cluster.TokenFile, "cluster-token-file", "", "cluster: shared secret for node-to-node calls (as ledgerd; scripts/cluster.sh gives it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "ledgerd-prof:", err)
		return 2
	}
	prefix := ""
	if cfg.Cluster.NodeID != "" {
		prefix = cfg.Cluster.NodeID + "-"
	}
	dir := os.Getenv("LEDGERD_PROF_DIR")
	if dir == "" {
		dir = cfg.DataDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "ledgerd-prof:", err)
		return 1
	}
	runtime.SetMutexProfileFraction(20)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond)) // waits of 100µs and more
	cpu, err := os.Create(filepath.Join(dir, prefix+"cpu.prof"))
	if err != nil {
		fmt.Fprintln(stderr, "ledgerd-prof:", err)
		return 1
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(stderr, "ledgerd-prof:", err)
		return 1
	}
	log := node.NewLogger(stderr, &cfg)
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(stderr, "ledgerd-prof:", err)
		return 1
	}
	<-ctx.Done()
	pprof.StopCPUProfile()
	cpu.Close()
	for _, name := range []string{"mutex", "block", "heap"} {
		f, err := os.Create(filepath.Join(dir, prefix+name+".prof"))
		if err == nil {
			pprof.Lookup(name).WriteTo(f, 0)
			f.Close()
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
