// Command benchsuite runs the standard benchmark suite through ledgerctl
// bench, several times each, and writes every run's JSON report and a
// markdown summary (median and spread) to an output directory. `make
// bench` runs it; `make bench LONG=1` runs the long suite.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// report holds the fields of a `ledgerctl bench --json` report the suite
// reads. The suite decodes the JSON rather than import package bench, so
// that it depends on the command's output only (as any script would) and
// not on the server packages bench links.
type report struct {
	Command          string  `json:"command"`
	Passed           bool    `json:"passed"`
	OpsPerSecond     float64 `json:"opsPerSecond"`
	EventsPerSecond  float64 `json:"eventsPerSecond"`
	Errors           int64   `json:"errors"`
	LostEvents       int64   `json:"lostEvents"`
	ServerCPUSeconds float64 `json:"serverCpuSeconds"`
	ServerPeakRSS    uint64  `json:"serverPeakRssBytes"`
	ServerCPUPerEv   float64 `json:"serverCpuMicrosPerEvent"`
	LatencyMs        struct {
		P50, P90, P99, P999, Max float64
	} `json:"latencyMs"`
	Check struct {
		Failures []string `json:"failures"`
	} `json:"check"`
	Machine struct {
		CPUs      int     `json:"cpus"`
		CPUModel  string  `json:"cpuModel"`
		Kernel    string  `json:"kernel"`
		MemTotal  uint64  `json:"memTotalBytes"`
		GoVersion string  `json:"goVersion"`
		LoadAvg1  float64 `json:"loadAvg1"`
	} `json:"machine"`
}

// item is one benchmark of the suite: ledgerctl bench with these args.
type item struct {
	name   string
	target string // what the issue asks of it, for the summary
	args   []string
}

// serverConfigs are the ledgerd config files (JSON) some benchmarks'
// embedded servers start with, through a wrapper given as --ledgerd. The
// security baseline: the issue's "auth and encryption together cost at
// most 15%" compares append-batch-1000 with append-batch-1000-noenc
// (authentication cannot be turned off).
var serverConfigs = map[string]string{
	"append-batch-1000-noenc": `{"security":{"encryption":{"disabled":true}}}`,
}

func short() []item {
	d := []string{"--duration", "5s", "--warmup", "1s"}
	return []item{
		{"append-seq", "p50 ≤ 0.5 ms", append([]string{"--embedded", "--workload", "append", "--clients", "1"}, d...)},
		{"append-32", "≥ 30,000 events/s", append([]string{"--embedded", "--workload", "append", "--clients", "32"}, d...)},
		{"append-batch-1000", "≥ 200,000 events/s", append([]string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"append-batch-1000-noenc", "encryption costs ≤ 15% of this", append([]string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"prove", "p50 ≤ 0.2 ms", append([]string{"--embedded", "--workload", "prove", "--clients", "1", "--preload", "100000"}, d...)},
		{"cluster3-append-batch-1000", "≥ 100,000 events/s, p99 < 50 ms", append([]string{"--embedded-cluster", "3", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"cluster3-append-32", "≥ 15,000 events/s", append([]string{"--embedded-cluster", "3", "--workload", "append", "--clients", "32"}, d...)},
	}
}

func long() []item {
	d := []string{"--duration", "60s", "--warmup", "5s"}
	return []item{
		{"append-seq", "p50 ≤ 0.5 ms", append([]string{"--embedded", "--workload", "append", "--clients", "1"}, d...)},
		{"append-32", "≥ 30,000 events/s", append([]string{"--embedded", "--workload", "append", "--clients", "32"}, d...)},
		{"append-32-open-20k", "p99 at 20,000/s offered", append([]string{"--embedded", "--workload", "append", "--clients", "64", "--rate", "20000"}, d...)},
		{"append-batch-1000", "≥ 200,000 events/s", append([]string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"append-batch-1000-noenc", "encryption costs ≤ 15% of this", append([]string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"append-wait-8", "", append([]string{"--embedded", "--workload", "append-wait", "--clients", "8"}, d...)},
		{"get-8", "", append([]string{"--embedded", "--workload", "get", "--clients", "8", "--preload", "1000000"}, d...)},
		{"prove", "p50 ≤ 0.2 ms", append([]string{"--embedded", "--workload", "prove", "--clients", "1", "--preload", "1000000"}, d...)},
		{"mixed-16", "", append([]string{"--embedded", "--workload", "mixed", "--mix", "append=70,get=20,prove=10", "--clients", "16"}, d...)},
		{"append-batch-1kB", "", append([]string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4", "--event-size", "1000"}, d...)},
		{"rss-10M", "RSS ≤ 512 MiB at 10M events", []string{"--embedded", "--workload", "append-batch", "--batch", "1000", "--clients", "4", "--ops", "10000", "--warmup", "0"}},
		{"cluster3-append-batch-1000", "≥ 100,000 events/s", append([]string{"--embedded-cluster", "3", "--workload", "append-batch", "--batch", "1000", "--clients", "4"}, d...)},
		{"cluster3-append-32", "≥ 15,000 events/s", append([]string{"--embedded-cluster", "3", "--workload", "append", "--clients", "32"}, d...)},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsuite:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchsuite", flag.ContinueOnError)
	ctl := fs.String("ledgerctl", "bin/ledgerctl", "the ledgerctl binary (ledgerd must sit beside it)")
	out := fs.String("out", "bench/results", "directory for the JSON reports and the summary")
	runs := fs.Int("runs", 3, "runs of each benchmark")
	isLong := fs.Bool("long", false, "run the long suite (minutes per benchmark)")
	only := fs.String("only", "", "run only the benchmarks whose name matches this regular expression (a plain word: contains it)")
	settle := fs.Duration("settle", 5*time.Second, "before each run, flush the page cache to disk (sync) and wait this long")
	extra := fs.String("args", "", "extra ledgerctl bench arguments for every run (space separated), e.g. --unsafe-nosync")
	if err := fs.Parse(args); err != nil {
		return err
	}
	items := short()
	suite := "short"
	if *isLong {
		items, suite = long(), "long"
	}
	onlyRE, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("--only: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("2006-01-02-1504")
	// The runs go in rounds, every benchmark once per round, so that the
	// machine's drift over the suite (10–20% within an hour on a shared
	// VM) falls on every benchmark alike; comparisons between them, like
	// encryption's cost, would otherwise compare different hours. Every
	// other round runs them in reverse order: a run right after a heavy
	// one (the disk still writing back the gigabytes it wrote) was
	// slower, and with a fixed order encrypted appends always followed
	// the 3-node cluster and their baseline always followed them. And
	// before each run the page cache is synced and the machine left to
	// settle (--settle).
	var results []result
	var itemArgs [][]string
	for _, it := range items {
		if !onlyRE.MatchString(it.name) {
			continue
		}
		args := it.args
		if config := serverConfigs[it.name]; config != "" {
			wrapper, cleanup, err := configWrapper(filepath.Join(filepath.Dir(*ctl), "ledgerd"), config)
			if err != nil {
				return err
			}
			defer cleanup()
			args = append(append([]string(nil), args...), "--ledgerd", wrapper)
		}
		results = append(results, result{item: it})
		itemArgs = append(itemArgs, args)
	}
	failed := 0
	for k := 1; k <= *runs && ctx.Err() == nil; k++ {
		for _, i := range roundOrder(k, len(results)) {
			if ctx.Err() != nil {
				break
			}
			if *settle > 0 {
				syscall.Sync()
				select {
				case <-time.After(*settle):
				case <-ctx.Done():
					continue
				}
			}
			res, it := &results[i], results[i].item
			argv := append([]string{"bench"}, itemArgs[i]...)
			argv = append(argv, strings.Fields(*extra)...)
			argv = append(argv, "--json")
			fmt.Fprintf(stderr, "[%s] run %d/%d: %s %s\n", it.name, k, *runs, *ctl, strings.Join(argv, " "))
			var so, se bytes.Buffer
			cmd := exec.CommandContext(ctx, *ctl, argv...)
			cmd.Stdout, cmd.Stderr = &so, io.MultiWriter(&se, stderr)
			runErr := cmd.Run()
			var rep report
			if err := json.Unmarshal(so.Bytes(), &rep); err != nil {
				res.errs = append(res.errs, fmt.Sprintf("run %d: %v: %s", k, runErr, lastLine(se.String())))
				failed++
				continue
			}
			path := filepath.Join(*out, fmt.Sprintf("%s-%s-r%d.json", stamp, it.name, k))
			if err := os.WriteFile(path, so.Bytes(), 0o644); err != nil {
				return err
			}
			if runErr != nil || !rep.Passed {
				failed++
				res.errs = append(res.errs, fmt.Sprintf("run %d failed its checks: %s", k, strings.Join(rep.Check.Failures, "; ")))
			}
			res.reports = append(res.reports, rep)
			fmt.Fprintf(stderr, "[%s] run %d: %.0f events/s, %.0f ops/s, p50 %.3f ms, p99 %.3f ms, lost %d -> %s\n",
				it.name, k, rep.EventsPerSecond, rep.OpsPerSecond, rep.LatencyMs.P50, rep.LatencyMs.P99, rep.LostEvents, path)
		}
	}
	md := summary(suite, stamp, *runs, *settle, results)
	path := filepath.Join(*out, stamp+"-summary.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stderr, "summary: %s\n", path)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed", failed)
	}
	return nil
}

// roundOrder is the order of n benchmarks in round k (from 1): as
// listed in odd rounds, reversed in even ones.
func roundOrder(k, n int) []int {
	order := make([]int, n)
	for j := range order {
		order[j] = j
		if k%2 == 0 {
			order[j] = n - 1 - j
		}
	}
	return order
}

// configWrapper writes config to a temporary file and a script that
// starts ledgerd with it (and whatever flags bench adds), for --ledgerd.
func configWrapper(ledgerd, config string) (path string, cleanup func(), err error) {
	abs, err := filepath.Abs(ledgerd)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "benchsuite-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	cfg := filepath.Join(dir, "config.json")
	script := filepath.Join(dir, "ledgerd")
	if err = os.WriteFile(cfg, []byte(config), 0o644); err == nil {
		err = os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nexec %q --config %q \"$@\"\n", abs, cfg)), 0o755)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return script, cleanup, nil
}

type result struct {
	item    item
	reports []report
	errs    []string
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// spread renders the median and the range of the runs' values.
func spread(rs []report, f func(*report) float64, format string) string {
	if len(rs) == 0 {
		return "–"
	}
	v := make([]float64, len(rs))
	for i := range rs {
		v[i] = f(&rs[i])
	}
	med := median(v)
	if len(v) == 1 {
		return fmt.Sprintf(format, med)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", med, v[0], v[len(v)-1])
}

func summary(suite, stamp string, runs int, settle time.Duration, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark suite %s, %s UTC\n\n", suite, stamp)
	for _, r := range results {
		if len(r.reports) > 0 {
			m := r.reports[0].Machine
			fmt.Fprintf(&b, "Machine: %d CPUs %s, %s, Linux %s, %s. ", m.CPUs, m.CPUModel, gib(m.MemTotal), m.Kernel, m.GoVersion)
			break
		}
	}
	fmt.Fprintf(&b, "Each benchmark ran %d times, in rounds of one run of each (every other round in reverse order; the page cache synced and %s of rest before each run): the median, then the range (min–max) of the runs. ", runs, settle)
	b.WriteString("Latency is in milliseconds, from the intended send time; fsync on unless the command says --unsafe-nosync. ")
	b.WriteString("Server CPU is the ledgerd process(es)' CPU time over the measured phase divided by the events (a figure that stays comparable on a busy machine); RSS is their peak. Load is the one-minute load average when each run started (2 CPUs: above 1 the machine was shared and throughput and latency suffer).\n\n")
	b.WriteString("| benchmark | target | events/s | ops/s | p50 | p99 | p99.9 | server CPU µs/event | server RSS MiB | load at start | lost | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		rs := r.reports
		status := "pass"
		if len(r.errs) > 0 {
			status = "**FAIL**"
		}
		var lost int64
		for _, x := range rs {
			lost += x.LostEvents
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
			r.item.name, r.item.target,
			spread(rs, func(x *report) float64 { return x.EventsPerSecond }, "%.0f"),
			spread(rs, func(x *report) float64 { return x.OpsPerSecond }, "%.0f"),
			spread(rs, func(x *report) float64 { return x.LatencyMs.P50 }, "%.3f"),
			spread(rs, func(x *report) float64 { return x.LatencyMs.P99 }, "%.2f"),
			spread(rs, func(x *report) float64 { return x.LatencyMs.P999 }, "%.2f"),
			spread(rs, func(x *report) float64 { return x.ServerCPUPerEv }, "%.1f"),
			spread(rs, func(x *report) float64 { return float64(x.ServerPeakRSS) / (1 << 20) }, "%.0f"),
			spread(rs, func(x *report) float64 { return x.Machine.LoadAvg1 }, "%.1f"),
			lost, status)
	}
	b.WriteString(encryptionCost(results))
	b.WriteString("\nCommands (each run's JSON report holds the exact command line):\n\n")
	for _, r := range results {
		cmd := "ledgerctl bench " + strings.Join(r.item.args, " ")
		if len(r.reports) > 0 {
			cmd = r.reports[0].Command
		}
		fmt.Fprintf(&b, "- %s: `%s`", r.item.name, cmd)
		if config := serverConfigs[r.item.name]; config != "" {
			fmt.Fprintf(&b, ", where --ledgerd is a wrapper running `ledgerd --config F` with F = `%s`", config)
		}
		b.WriteString("\n")
		for _, e := range r.errs {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
	}
	return b.String()
}

// encryptionCost compares append-batch-1000 with its run without field
// encryption in the same round (the runs nearest in time), as the
// security issue's budget states it: 1 - events/s with / without.
func encryptionCost(results []result) string {
	var with, without []report
	for _, r := range results {
		switch r.item.name {
		case "append-batch-1000":
			with = r.reports
		case "append-batch-1000-noenc":
			without = r.reports
		}
	}
	n := min(len(with), len(without))
	if n == 0 {
		return ""
	}
	costs := make([]float64, n)
	var b strings.Builder
	b.WriteString("\nEncryption's cost (append-batch-1000 against -noenc, round by round; budget ≤ 15%): ")
	for i := range n {
		costs[i] = 1 - with[i].EventsPerSecond/without[i].EventsPerSecond
		fmt.Fprintf(&b, "%.1f%% (+%.1f µs/event), ", 100*costs[i], with[i].ServerCPUPerEv-without[i].ServerCPUPerEv)
	}
	fmt.Fprintf(&b, "median %.1f%%.\n", 100*median(costs))
	return b.String()
}

// median sorts v and returns its median (the mean of the middle two of
// an even count).
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

func gib(b uint64) string { return fmt.Sprintf("%.0f GiB RAM", float64(b)/(1<<30)) }
