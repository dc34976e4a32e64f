package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// smokeConfig is a run of a few seconds at most against an in-process
// node; it asserts what was done and checked, never how fast.
func smokeConfig(workload string) Config {
	cfg := DefaultConfig()
	cfg.Workload = workload
	cfg.Embedded = 1
	cfg.Clients = 3
	cfg.Ops = 40
	cfg.Warmup = 0
	cfg.Preload = 300
	cfg.Seed = 9
	cfg.UnsafeNoSync = true // fsync adds nothing to what these tests check
	return cfg
}

func TestSmokeEachWorkload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		events int64 // per op
	}{
		{name: "append", events: 1},
		{name: "append-batch", edit: func(c *Config) { c.Batch = 50 }, events: 50},
		{name: "append-wait", events: 1},
		{name: "append-wait", edit: func(c *Config) { c.Batch = 20 }, events: 20},
		{name: "get", events: 1},
		{name: "prove", events: 1},
		{name: "query"},
		{name: "mixed", edit: func(c *Config) { c.Mix = "append=2,append-batch=1,append-wait=1,get=2,prove=2,query=1"; c.Batch = 10 }},
		{name: "append", edit: func(c *Config) { c.Rate = 400; c.ClientIDs = true; c.Warmup = 50 * time.Millisecond }, events: 1},
		{name: "append-batch", edit: func(c *Config) { c.Batch = 20; c.Ops = 0; c.Duration = 300 * time.Millisecond }, events: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smokeConfig(tc.name)
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			var out bytes.Buffer
			cfg.JSON = true
			rep, err := Run(context.Background(), cfg, &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			var top map[string]any
			if err := json.Unmarshal(out.Bytes(), &top); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
			}
			for _, k := range []string{"workload", "opsPerSecond", "eventsPerSecond", "errors", "lostEvents", "latencyMs"} {
				if _, ok := top[k]; !ok {
					t.Errorf("JSON lacks top-level %q", k)
				}
			}
			for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
				if _, ok := top["latencyMs"].(map[string]any)[k]; !ok {
					t.Errorf("JSON latencyMs lacks %q", k)
				}
			}
			if !rep.Passed || rep.Errors != 0 || rep.LostEvents != 0 {
				t.Fatalf("passed %v, errors %v %v, lost %d, failures %v", rep.Passed, rep.ErrorsByCode, rep.ErrorSamples, rep.LostEvents, rep.Check.Failures)
			}
			if cfg.Ops > 0 && rep.Ops != cfg.Ops {
				t.Errorf("%d ops, want %d", rep.Ops, cfg.Ops)
			}
			if tc.events > 0 && rep.Events != rep.Ops*tc.events {
				t.Errorf("%d events for %d ops, want %d each", rep.Events, rep.Ops, tc.events)
			}
			if rep.LatencyMs.P50 <= 0 || rep.LatencyMs.Max < rep.LatencyMs.P99 || rep.OpsPerSecond <= 0 {
				t.Errorf("implausible figures: %+v, %v ops/s", rep.LatencyMs, rep.OpsPerSecond)
			}
			c := rep.Check
			if c.Method != "full" || !c.RootRecomputed || !c.Consistent || c.Checked != c.AckedAppends || c.FirstSize < 300 {
				t.Errorf("check: %+v", c)
			}
			if rep.ServerMode != ModeInProcess || rep.DiskBytes == 0 || rep.TreeSize != c.FinalSize {
				t.Errorf("mode %s, disk %d, tree %d", rep.ServerMode, rep.DiskBytes, rep.TreeSize)
			}
			if cfg.Workload == WorkloadMixed && len(rep.ByKind) != 6 {
				t.Errorf("mixed: by kind %v", rep.ByKind)
			}
		})
	}
}

func TestSmokeTextReport(t *testing.T) {
	cfg := smokeConfig(WorkloadAppend)
	cfg.Command = "ledgerctl bench --embedded --ops 40"
	var out bytes.Buffer
	if _, err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"command: ledgerctl bench --embedded --ops 40", "UNSAFE: fsync off", "latency p50", "p99.9", "result: PASS"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadConfigs(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"no target":    func(c *Config) { c.Embedded = 0 },
		"both targets": func(c *Config) { c.Addrs = []string{"127.0.0.1:1"} },
		"cluster of 2": func(c *Config) { c.Embedded = 2 },
		"workload":     func(c *Config) { c.Workload = "nope" },
		"batch":        func(c *Config) { c.Batch = 5 },
		"huge batch":   func(c *Config) { c.Workload = WorkloadAppendBatch; c.Batch = 20000 },
		"negative":     func(c *Config) { c.Rate = -1 },
	} {
		cfg := smokeConfig(WorkloadAppend)
		edit(&cfg)
		if _, err := Run(context.Background(), cfg, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSmokeServerProcess(t *testing.T) {
	cfg := smokeConfig(WorkloadAppendBatch)
	cfg.Ledgerd = ledgerdBinary(t)
	cfg.Batch = 100
	cfg.Ops = 20
	cfg.UnsafeNoSync = false
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.Events != 2000 || rep.ServerMode != ModeSubprocess || rep.ServerPeakRSSBytes == 0 || len(rep.Warnings) > 0 {
		t.Fatalf("passed %v, events %d, mode %s, peak RSS %d, warnings %v, failures %v",
			rep.Passed, rep.Events, rep.ServerMode, rep.ServerPeakRSSBytes, rep.Warnings, rep.Check.Failures)
	}
}

func TestSmokeCluster(t *testing.T) {
	cfg := smokeConfig(WorkloadMixed)
	cfg.Ledgerd = ledgerdBinary(t)
	cfg.Embedded = 3
	cfg.Mix = "append=1,append-batch=1,get=1,prove=1"
	cfg.Batch = 50
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.Errors != 0 || rep.Setup.Nodes != 3 || !rep.Check.Consistent || len(rep.Warnings) > 0 {
		t.Fatalf("passed %v, errors %v, nodes %d, check %+v, warnings %v", rep.Passed, rep.ErrorsByCode, rep.Setup.Nodes, rep.Check, rep.Warnings)
	}
}

// A server the run did not start: addresses, the pinned verifier key and
// the caller's credentials are given.
func TestSmokeRemote(t *testing.T) {
	tgt, err := startTarget(context.Background(), &Config{Embedded: 1, UnsafeNoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.close(context.Background())
	cfg := smokeConfig(WorkloadMixed)
	cfg.Mix = "append=1,prove=1"
	cfg.Embedded = 0
	cfg.Addrs = tgt.addrs
	cfg.VerifierKey = tgt.vkey
	if tgt.token != "" {
		cfg.DialOptions = []grpc.DialOption{grpc.WithPerRPCCredentials(bearer(tgt.token))}
	}
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.Errors != 0 || rep.ServerMode != ModeRemote || rep.Check.VerifierKey != "given" || rep.DiskBytes != 0 {
		t.Fatalf("passed %v, errors %v, mode %s, key %s, disk %d", rep.Passed, rep.ErrorsByCode, rep.ServerMode, rep.Check.VerifierKey, rep.DiskBytes)
	}

	// A wrong pinned key fails before loading anything.
	cfg.VerifierKey = "bench.local+00000000+AaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA"
	if _, err := Run(context.Background(), cfg, &bytes.Buffer{}); err == nil {
		t.Fatal("a checkpoint signed by another key was accepted")
	}
}
