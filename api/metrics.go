package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// Metrics are the API's and the write path's Prometheus metrics, on a
// Registerer the caller passes in:
//
//	ledger_append_duration_seconds{api}         append calls, by API (grpc, http)
//	ledger_append_request_events{api}           events per append call
//	ledger_commit_batch_events                  events per group-commit batch
//	ledger_commit_duration_seconds              one batch's commit: fsync, or Raft replication
//	ledger_events_appended_total                events committed (new entries)
//	ledger_events_duplicate_total               appends answered with an existing entry
//	ledger_tree_size                            committed entries
//	ledger_checkpoint_size                      entries the newest checkpoint covers
//	ledger_checkpoint_lag_entries               committed entries no checkpoint covers yet
//	ledger_checkpoint_age_seconds               time since the newest checkpoint was signed
//	ledger_http_requests_total{route,method,code}
//	ledger_http_request_duration_seconds{route,method}
//	ledger_grpc_requests_total{method,code}
//	ledger_grpc_request_duration_seconds{method}
//	go_*, process_*                             Go runtime and process (when asked)
//
// The query engine, the Raft node and the sinks register their own on
// the same Registerer (ledger_query_*, ledgerd_raft_*, ledger_sink_*).
//
// Use: NewMetrics before the ledger (WrapCommitter goes into its
// config), WatchLedger once it runs, Close when the node stops (it stops
// the checkpoint watcher and unregisters everything).
type Metrics struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector

	appendDur    *prometheus.HistogramVec
	appendEvents *prometheus.HistogramVec
	commitEvents prometheus.Histogram
	commitDur    prometheus.Histogram
	appended     prometheus.Counter
	duplicates   prometheus.Counter
	httpReqs     *prometheus.CounterVec
	httpDur      *prometheus.HistogramVec
	grpcReqs     *prometheus.CounterVec
	grpcDur      *prometheus.HistogramVec

	cpSigned atomic.Int64 // Unix nanoseconds the newest checkpoint was first seen
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	Registerer prometheus.Registerer
	// Runtime adds the Go runtime and process collectors.
	Runtime bool
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics creates and registers the metrics.
func NewMetrics(o MetricsOptions) (*Metrics, error) {
	m := &Metrics{
		reg: o.Registerer,
		appendDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ledger_append_duration_seconds", Help: "Append calls from receipt to durable result, by API (grpc, http).", Buckets: latencyBuckets,
		}, []string{"api"}),
		appendEvents: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ledger_append_request_events", Help: "Events per append call, by API.", Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}, []string{"api"}),
		commitEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_commit_batch_events", Help: "Events per group-commit batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_commit_duration_seconds", Help: "Time to make one batch durable: the Pebble commit and fsync, or Raft replication.", Buckets: latencyBuckets,
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_events_appended_total", Help: "Events committed as new entries.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_events_duplicate_total", Help: "Appended events whose id was already in the log (answered with the stored entry).",
		}),
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ledger_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.", Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		grpcReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_grpc_requests_total", Help: "gRPC calls by full method and status code.",
		}, []string{"method", "code"}),
		grpcDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ledger_grpc_request_duration_seconds", Help: "gRPC call latency by full method (streams: until they end).", Buckets: latencyBuckets,
		}, []string{"method"}),
	}
	cs := []prometheus.Collector{m.appendDur, m.appendEvents, m.commitEvents, m.commitDur, m.appended, m.duplicates,
		m.httpReqs, m.httpDur, m.grpcReqs, m.grpcDur}
	if o.Runtime {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := m.register(cs...); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) register(cs ...prometheus.Collector) error {
	if m.reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			m.unregister()
			return err
		}
		m.cs = append(m.cs, c)
	}
	return nil
}

func (m *Metrics) unregister() {
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
	m.cs = nil
}

// WatchLedger registers the tree and checkpoint gauges of l and starts
// the goroutine that notes when each checkpoint is signed.
func (m *Metrics) WatchLedger(l *ledger.Ledger) error {
	st := l.Store()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.cpSigned.Store(time.Now().UnixNano())
	err := m.register(
		gauge("ledger_tree_size", "Committed entries.", func() float64 { return float64(st.State().Size) }),
		gauge("ledger_checkpoint_size", "Entries the newest signed checkpoint covers.", func() float64 { return float64(l.Checkpoint().Size) }),
		gauge("ledger_checkpoint_lag_entries", "Committed entries no signed checkpoint covers yet.", func() float64 {
			size, cp := st.State().Size, l.Checkpoint().Size
			if size < cp {
				return 0
			}
			return float64(size - cp)
		}),
		gauge("ledger_checkpoint_age_seconds", "Time since the newest checkpoint was signed (it grows while nothing is appended; alert on it with lag > 0).",
			func() float64 { return m.checkpointAge().Seconds() }),
	)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			// Watched, not waited for: a metrics scrape must not make
			// checkpoints more frequent (see ledger.Config).
			select {
			case <-l.CheckpointChanged():
			case <-ctx.Done():
				return
			case <-l.Closed():
				return
			}
			m.cpSigned.Store(time.Now().UnixNano())
		}
	}()
	return nil
}

func (m *Metrics) checkpointAge() time.Duration {
	return time.Since(time.Unix(0, m.cpSigned.Load()))
}

// Close stops the checkpoint watcher and unregisters the metrics.
func (m *Metrics) Close() {
	if m.stop != nil {
		m.stop()
	}
	m.wg.Wait()
	m.unregister()
}

func (m *Metrics) observeAppend(api string, events int, d time.Duration, err error) {
	if err != nil {
		return
	}
	m.appendDur.WithLabelValues(api).Observe(d.Seconds())
	m.appendEvents.WithLabelValues(api).Observe(float64(events))
}

// WrapCommitter measures c's batches: size, commit time, new and
// duplicate entries. An AsyncCommitter stays one.
func (m *Metrics) WrapCommitter(c ledger.Committer) ledger.Committer {
	if ac, ok := c.(ledger.AsyncCommitter); ok {
		return asyncCommitter{committer{c, m}, ac}
	}
	return committer{c, m}
}

type committer struct {
	ledger.Committer
	m *Metrics
}

func (c committer) Commit(ctx context.Context, leaves [][]byte) ([]ledger.Result, error) {
	start := time.Now()
	res, err := c.Committer.Commit(ctx, leaves)
	c.m.observeCommit(len(leaves), start, res, err)
	return res, err
}

type asyncCommitter struct {
	committer
	async ledger.AsyncCommitter
}

func (c asyncCommitter) CommitAsync(ctx context.Context, leaves [][]byte) (func() ([]ledger.Result, error), error) {
	start := time.Now()
	wait, err := c.async.CommitAsync(ctx, leaves)
	if err != nil {
		c.m.observeCommit(len(leaves), start, nil, err)
		return nil, err
	}
	return func() ([]ledger.Result, error) {
		res, err := wait()
		c.m.observeCommit(len(leaves), start, res, err)
		return res, err
	}, nil
}

func (m *Metrics) observeCommit(n int, start time.Time, res []ledger.Result, err error) {
	if err != nil {
		return
	}
	m.commitDur.Observe(time.Since(start).Seconds())
	m.commitEvents.Observe(float64(n))
	dup := 0
	for _, r := range res {
		if r.Duplicate {
			dup++
		}
	}
	m.appended.Add(float64(len(res) - dup))
	m.duplicates.Add(float64(dup))
}

// Full names of the append RPCs, whose latency is an append latency.
const (
	methodAppend      = "/ledger.v1.Ledger/Append"
	methodAppendBatch = "/ledger.v1.Ledger/AppendBatch"
)

// UnaryInterceptor counts and times unary calls; put it first, so it
// sees the calls other interceptors refuse.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		d := time.Since(start)
		m.grpcReqs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		m.grpcDur.WithLabelValues(info.FullMethod).Observe(d.Seconds())
		switch info.FullMethod {
		case methodAppend:
			m.observeAppend("grpc", 1, d, err)
		case methodAppendBatch:
			if r, ok := req.(*pb.AppendBatchRequest); ok {
				m.observeAppend("grpc", len(r.Events), d, err)
			}
		}
		return resp, err
	}
}

// StreamInterceptor counts and times streams.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.grpcReqs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		m.grpcDur.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		return err
	}
}

// ServerOptions are the interceptors as gRPC server options.
func (m *Metrics) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(m.UnaryInterceptor()), grpc.ChainStreamInterceptor(m.StreamInterceptor())}
}

func (m *Metrics) httpMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route, method := routePattern(r), r.Method
		if route == "" {
			route, method = "other", "other" // no unbounded label values
		}
		m.httpReqs.WithLabelValues(route, method, strconv.Itoa(rec.code)).Inc()
		m.httpDur.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

type codeRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (c *codeRecorder) WriteHeader(code int) {
	if !c.wrote {
		c.code, c.wrote = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeRecorder) Write(b []byte) (int, error) {
	c.wrote = true
	return c.ResponseWriter.Write(b)
}

func (c *codeRecorder) Unwrap() http.ResponseWriter { return c.ResponseWriter }
