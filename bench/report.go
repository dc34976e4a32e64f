package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
}

func latencyOf(h *Histogram) Latency {
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	return Latency{
		P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()), Min: ms(h.Min()), Mean: h.Mean() / 1e6,
	}
}

// KindReport is the share of one kind of operation in a mixed workload.
type KindReport struct {
	Ops       int64   `json:"ops"`
	Events    int64   `json:"events"`
	Errors    int64   `json:"errors"`
	LatencyMs Latency `json:"latencyMs"`
}

// Report is the result of a run. Scripts rely on the top-level fields
// workload, opsPerSecond, eventsPerSecond, errors, lostEvents and
// latencyMs; the rest describes the run so that two reports can be
// compared.
type Report struct {
	Workload string `json:"workload"`
	// Command is the command line that reproduces the run.
	Command   string    `json:"command"`
	StartedAt time.Time `json:"startedAt"`
	Passed    bool      `json:"passed"`

	OpsPerSecond    float64          `json:"opsPerSecond"`
	EventsPerSecond float64          `json:"eventsPerSecond"`
	Errors          int64            `json:"errors"`
	ErrorsByCode    map[string]int64 `json:"errorsByCode"`
	// ErrorSamples holds the first message seen for each error code.
	ErrorSamples map[string]string     `json:"errorSamples,omitempty"`
	LostEvents   int64                 `json:"lostEvents"`
	LatencyMs    Latency               `json:"latencyMs"`
	ByKind       map[string]KindReport `json:"byKind,omitempty"`

	Ops             int64   `json:"ops"`
	Events          int64   `json:"events"`
	DurationSeconds float64 `json:"durationSeconds"`
	// NotSent counts open-loop operations that were due but never sent
	// because the run's drain deadline passed (the server fell behind).
	NotSent int64 `json:"notSent"`

	// Server resources over the measured phase. ServerMode says what was
	// measured: "subprocess" (the server's own /proc), "in-process" (this
	// process: server and client together) or "remote" (not measured).
	ServerMode         string  `json:"serverMode"`
	ServerCPUSeconds   float64 `json:"serverCpuSeconds"`
	ServerPeakRSSBytes uint64  `json:"serverPeakRssBytes"`
	// ServerCPUMicrosPerEvent divides ServerCPUSeconds by the events (or
	// reads) of the measured phase: the figure that stays comparable on
	// a busy machine, where throughput and latency do not.
	ServerCPUMicrosPerEvent float64 `json:"serverCpuMicrosPerEvent"`
	ClientCPUSeconds        float64 `json:"clientCpuSeconds"`
	// DiskBytes is the size of the files of the embedded data
	// directories after the servers stopped, DiskAllocatedBytes the space
	// allocated to them (preallocated logs included); BytesPerEvent
	// divides DiskBytes by the tree size.
	DiskBytes          uint64  `json:"diskBytes,omitempty"`
	DiskAllocatedBytes uint64  `json:"diskAllocatedBytes,omitempty"`
	TreeSize           uint64  `json:"treeSize"`
	BytesPerEvent      float64 `json:"bytesPerEvent,omitempty"`

	// Timeline has the operations, events and errors finished in each
	// second of the measured phase.
	Timeline []Second `json:"timeline,omitempty"`

	// Warnings are things that went wrong without failing the checks
	// (an embedded server that did not stop cleanly).
	Warnings []string `json:"warnings,omitempty"`

	Setup   Setup   `json:"setup"`
	Check   Check   `json:"check"`
	Machine Machine `json:"machine"`
}

// Second is one second of the measured phase.
type Second struct {
	Ops    int64 `json:"ops"`
	Events int64 `json:"events"`
	Errors int64 `json:"errors"`
}

// Setup is the configuration as run.
type Setup struct {
	Target        string   `json:"target"` // embedded, embedded-cluster, remote
	Nodes         int      `json:"nodes"`
	Addrs         []string `json:"addrs"`
	UnsafeNoSync  bool     `json:"unsafeNoSync"`
	Clients       int      `json:"clients"`
	Conns         int      `json:"conns"`
	Batch         int      `json:"batch"`
	Rate          float64  `json:"rate"` // 0: closed loop
	Mix           string   `json:"mix,omitempty"`
	DurationLimit string   `json:"durationLimit,omitempty"`
	OpsLimit      int64    `json:"opsLimit,omitempty"`
	WarmupSeconds float64  `json:"warmupSeconds"`
	Preload       int      `json:"preload"`
	Seed          uint64   `json:"seed"`
	ClientIDs     bool     `json:"clientIds"`
	EventSize     int      `json:"eventSize"`      // asked
	EventBytes    float64  `json:"eventBytesMean"` // encoded size sent, mean
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	s := r.Setup
	fmt.Fprintf(&b, "command: %s\n", r.Command)
	sync := "fsync on"
	if s.UnsafeNoSync {
		sync = "UNSAFE: fsync off (--unsafe-nosync)"
	}
	loop := "closed loop"
	if s.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f ops/s", s.Rate)
	}
	fmt.Fprintf(&b, "target: %s, %d node(s), server %s, %s\n", s.Target, s.Nodes, r.ServerMode, sync)
	fmt.Fprintf(&b, "workload: %s", r.Workload)
	if s.Mix != "" {
		fmt.Fprintf(&b, " (%s)", s.Mix)
	}
	fmt.Fprintf(&b, ", batch %d, %d clients on %d conns, %s, events %.0f B (seed %d)\n",
		s.Batch, s.Clients, s.Conns, loop, s.EventBytes, s.Seed)
	fmt.Fprintf(&b, "machine: %d CPUs %s, %s, %s, load %.2f at start\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvg1)
	if r.Machine.LoadAvg1 > float64(r.Machine.CPUs)/2 {
		fmt.Fprintf(&b, "WARNING: the machine was busy when the run started (load %.2f on %d CPUs): figures are not comparable\n", r.Machine.LoadAvg1, r.Machine.CPUs)
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\t\n", k, v) }
	row("duration", fmt.Sprintf("%.2f s", r.DurationSeconds))
	row("ops", fmt.Sprintf("%d", r.Ops))
	row("ops/s", fmt.Sprintf("%.0f", r.OpsPerSecond))
	row("events/s", fmt.Sprintf("%.0f", r.EventsPerSecond))
	l := r.LatencyMs
	row("latency p50", fmt.Sprintf("%.3f ms", l.P50))
	row("p90", fmt.Sprintf("%.3f ms", l.P90))
	row("p99", fmt.Sprintf("%.3f ms", l.P99))
	row("p99.9", fmt.Sprintf("%.3f ms", l.P999))
	row("max", fmt.Sprintf("%.3f ms", l.Max))
	if len(r.Timeline) > 1 {
		lo, hi := r.Timeline[0].Events, r.Timeline[0].Events
		for _, x := range r.Timeline {
			lo, hi = min(lo, x.Events), max(hi, x.Events)
		}
		row("events/s by second", fmt.Sprintf("min %d, max %d", lo, hi))
	}
	row("errors", fmt.Sprintf("%d", r.Errors))
	for _, code := range slices.Sorted(maps.Keys(r.ErrorsByCode)) {
		row("  "+code, fmt.Sprintf("%d", r.ErrorsByCode[code]))
	}
	if r.NotSent > 0 {
		row("not sent (behind)", fmt.Sprintf("%d", r.NotSent))
	}
	switch r.ServerMode {
	case ModeRemote:
		row("server CPU / RSS", "not measured (remote)")
	case ModeInProcess:
		row("process CPU (srv+cli)", fmt.Sprintf("%.2f s (%.1f µs/event)", r.ServerCPUSeconds, r.ServerCPUMicrosPerEvent))
		row("process peak RSS", mib(r.ServerPeakRSSBytes))
	default:
		row("server CPU", fmt.Sprintf("%.2f s (%.1f µs/event)", r.ServerCPUSeconds, r.ServerCPUMicrosPerEvent))
		row("server peak RSS", mib(r.ServerPeakRSSBytes))
		row("client CPU", fmt.Sprintf("%.2f s", r.ClientCPUSeconds))
	}
	if r.DiskBytes > 0 {
		row("disk", fmt.Sprintf("%s for %d entries", mib(r.DiskBytes), r.TreeSize))
		row("disk per event", fmt.Sprintf("%.0f B (allocated %s)", r.BytesPerEvent, mib(r.DiskAllocatedBytes)))
	}
	tw.Flush()

	if len(r.ByKind) > 1 {
		fmt.Fprintf(&b, "\nby kind:\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "kind\tops\terrors\tp50 ms\tp99 ms\tmax ms\t\n")
		for _, k := range slices.Sorted(maps.Keys(r.ByKind)) {
			kr := r.ByKind[k]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.3f\t%.3f\t\n", k, kr.Ops, kr.Errors, kr.LatencyMs.P50, kr.LatencyMs.P99, kr.LatencyMs.Max)
		}
		tw.Flush()
	}

	c := r.Check
	fmt.Fprintf(&b, "\ncheck: %d acknowledged appends, %d checked (%s)", c.AckedAppends, c.Checked, c.Method)
	if c.RootRecomputed {
		fmt.Fprintf(&b, ", root of all %d entries recomputed", c.FinalSize)
	}
	if c.Consistent {
		fmt.Fprintf(&b, ", checkpoint %d consistent with %d", c.FinalSize, c.FirstSize)
	}
	fmt.Fprintf(&b, "; lost %d\n", r.LostEvents)
	for _, f := range c.Failures {
		fmt.Fprintf(&b, "  FAIL: %s\n", f)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  WARNING: %s\n", w)
	}
	for _, code := range slices.Sorted(maps.Keys(r.ErrorSamples)) {
		fmt.Fprintf(&b, "  first %s: %s\n", code, r.ErrorSamples[code])
	}
	if r.Passed {
		b.WriteString("result: PASS\n")
	} else {
		b.WriteString("result: FAIL\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
