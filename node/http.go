package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/auditledger/ledgerd/api"
	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/query"
)

// apiState is what the query engine, the HTTP API and the metrics add
// to a node. The pieces go in at these points of Start:
//
//  1. openStore: the query index rides the store's apply hooks and is
//     attached (built, for an older data directory) before anything
//     applies — before Raft starts, in cluster mode.
//  2. instrument: the ledger's committer is measured.
//  3. metricsServerOptions: the gRPC interceptors, outermost.
//  4. startHTTP: the Query gRPC service, the engine, the HTTP listener.
//
// Everything registers on one prometheus.Registry per node (Registry),
// served at /metrics.
type apiState struct {
	reg     *prometheus.Registry
	metrics *api.Metrics
	index   *query.Index
	engine  *query.Engine
	sinks   *feed.Manager // set by startFeed; nil when none

	srv     *http.Server
	httpLis net.Listener
	wg      sync.WaitGroup
	started time.Time
}

// Registry returns the node's metrics registry (created on first use).
func (n *Node) Registry() *prometheus.Registry {
	if n.api.reg == nil {
		n.api.reg = prometheus.NewRegistry()
		n.api.started = time.Now()
	}
	return n.api.reg
}

// apiMetrics returns the node's API metrics (created on first use).
func (n *Node) apiMetrics() (*api.Metrics, error) {
	if n.api.metrics == nil {
		m, err := api.NewMetrics(api.MetricsOptions{Registerer: n.Registry(), Runtime: true})
		if err != nil {
			return nil, err
		}
		n.api.metrics = m
		n.closers = append(n.closers, func(context.Context) error { m.Close(); return nil })
	}
	return n.api.metrics, nil
}

// openStore opens the Pebble store with the query index installed, and
// attaches the index (building it over entries written without it).
func (n *Node) openStore(ctx context.Context, dir string, o ledger.StoreOptions) (*ledger.Store, error) {
	n.api.index = query.NewIndex()
	n.api.index.Install(&o)
	st, err := ledger.OpenStore(dir, o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := n.api.index.Attach(ctx, st); err != nil {
		st.Close()
		return nil, err
	}
	if d := time.Since(start); d > time.Second {
		n.log.Info("query index built", "entries", st.State().Size, "took", d.Round(time.Millisecond))
	}
	return st, nil
}

// instrument measures the ledger's committer (nil: the local default).
func (n *Node) instrument(c ledger.Committer) ledger.Committer {
	m, err := n.apiMetrics()
	if err != nil {
		n.log.Error("metrics: committer not measured", "err", err)
		return c
	}
	if c == nil {
		c = ledger.LocalCommitter{Store: n.store}
	}
	return m.WrapCommitter(c)
}

// metricsServerOptions are the gRPC metrics interceptors; they go first
// so that they count the calls authentication refuses.
func (n *Node) metricsServerOptions() []grpc.ServerOption {
	m, err := n.apiMetrics()
	if err != nil {
		n.log.Error("metrics: gRPC calls not measured", "err", err)
		return nil
	}
	return m.ServerOptions()
}

// storedForms lets queries find encrypted searchable fields: the value's
// deterministic ciphertexts under the data subject's keys (the subject
// is the filter's value of the configured subject field).
func (n *Node) storedForms() func(query.Field, string, *query.Filter) ([]string, error) {
	if n.sec == nil || n.sec.crypter == nil {
		return nil
	}
	name := n.cfg.Security.Encryption.SubjectField
	if name == "" {
		name = fieldcrypt.DefaultSubjectField
	}
	subjectField, ok := query.FieldByName(name)
	if !ok {
		return nil // no subject, or one that is not an indexed field
	}
	c := n.sec.crypter
	return func(f query.Field, value string, filter *query.Filter) ([]string, error) {
		subject := filter.Value(subjectField)
		if subject == "" {
			return nil, nil
		}
		return c.StoredForms(subject, f.String(), value)
	}
}

// startHTTP registers the Query service on g, then serves the HTTP API
// on cfg.HTTPAddr (none when it is empty). ledgerSvc is the service the
// gRPC server has, so both APIs share it.
func (n *Node) startHTTP(g *grpc.Server, ledgerSvc *api.LedgerService) error {
	m, err := n.apiMetrics()
	if err != nil {
		return err
	}
	if err := m.WatchLedger(n.ledger); err != nil {
		return err
	}
	eng, err := query.NewEngine(query.EngineOptions{Store: n.store, CursorKey: n.keys.HMACKey, Registerer: n.Registry(), StoredForms: n.storedForms()})
	if err != nil {
		return err
	}
	n.api.engine = eng
	n.closers = append(n.closers, func(context.Context) error { eng.Close(); return nil })
	qs := api.NewQueryService(api.QueryOptions{Engine: eng, View: n.eventView(), Logger: n.log})
	qs.Register(g)

	if n.cfg.HTTPAddr == "" {
		return nil
	}
	var cluster api.ClusterHealth
	nodeID := ""
	if c := n.Cluster(); c != nil {
		cluster, nodeID = c, c.ID()
	}
	o := api.HTTPOptions{
		Ledger:   ledgerSvc,
		Query:    qs,
		Health:   api.NewHealth(api.HealthOptions{Ledger: n.ledger, Cluster: cluster, Sinks: n.api.sinks, Metrics: m, NodeID: nodeID, Started: n.api.started}),
		Metrics:  m,
		Gatherer: n.Registry(),
		Logger:   n.log,
	}
	if s := n.sec; s != nil && s.guard != nil && !s.cfg.noAuth {
		guard := s.guard
		o.Middleware = func(h http.Handler) http.Handler { return guard.Middleware(api.HTTPRoute, api.WriteHTTPError, h) }
	}
	tlsConf, err := n.httpTLS()
	if err != nil {
		return err
	}
	if n.api.httpLis, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen HTTP on %s: %w", n.cfg.HTTPAddr, err)
	}
	lis := n.api.httpLis
	if tlsConf != nil {
		lis = tls.NewListener(lis, tlsConf)
	}
	n.api.srv = &http.Server{
		Handler:           api.NewHTTPHandler(o),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 48 MiB batch on a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          nil,
	}
	srv := n.api.srv
	n.api.wg.Add(1)
	go func() {
		defer n.api.wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP server stopped", "err", err)
		}
	}()
	n.closers = append(n.closers, n.stopHTTP)
	n.log.Info("serving HTTP", "addr", n.api.httpLis.Addr().String(), "tls", tlsConf != nil)
	return nil
}

// stopHTTP lets in-flight requests finish (until ctx ends), then stops.
func (n *Node) stopHTTP(ctx context.Context) error {
	err := n.api.srv.Shutdown(ctx)
	if err != nil {
		n.api.srv.Close()
	}
	n.api.wg.Wait()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil // cut, as Close promises
	}
	return err
}

// httpTLS is the HTTP listener's TLS: the API's certificate (the node
// certificate when only that is configured), as for gRPC.
func (n *Node) httpTLS() (*tls.Config, error) {
	files := n.cfg.Security.TLS
	var extra []string
	if n.cfg.Cluster.Enabled() && n.cfg.Cluster.TLSCertFile != "" {
		extra = append(extra, n.cfg.Cluster.TLSCAFile)
		if !files.Enabled() {
			files.CertFile, files.KeyFile = n.cfg.Cluster.TLSCertFile, n.cfg.Cluster.TLSKeyFile
		}
	}
	if !files.Enabled() {
		return nil, nil
	}
	return files.ServerConfig(extra...)
}

// HTTPAddr is the address the HTTP listener is bound to ("" when off).
func (n *Node) HTTPAddr() string {
	if n.api.httpLis == nil {
		return ""
	}
	return n.api.httpLis.Addr().String()
}

// QueryEngine returns the node's query engine.
func (n *Node) QueryEngine() *query.Engine { return n.api.engine }
