package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/auditledger/ledgerd/api"
	"github.com/auditledger/ledgerd/api/wire"
	"github.com/auditledger/ledgerd/ledger"
)

// Node is one running ledgerd: the store, the ledger's write path and the
// API listeners. Start builds and starts it; Close stops it.
type Node struct {
	cfg    Config
	log    *slog.Logger
	keys   *Keys
	store  *ledger.Store
	ledger *ledger.Ledger
	health *health.Server

	grpc    *grpc.Server
	grpcLis net.Listener
	cluster *clusterState // nil on a single node (see cluster.go)
	sec     *security     // see security.go
	api     apiState      // query, HTTP API, metrics: see http.go

	// closers run in reverse order of registration on Close, after the
	// listeners stop and before the ledger and store close.
	closers []func(context.Context) error
	wg      sync.WaitGroup
	once    sync.Once
}

// maxGRPCMessage admits a full batch (16 MiB of leaves) with room for
// the protobuf framing; bigger messages fail with ResourceExhausted.
const maxGRPCMessage = 24 << 20

// grpcStreamWorkers is the number of goroutines kept to serve calls; more
// concurrent calls than that each get a new goroutine, as without workers.
const grpcStreamWorkers = 64

// Start opens the data directory, loads or creates keys and starts
// serving. On error everything started is stopped again.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()
	if cfg.Cluster.Enabled() {
		if err := n.startCluster(ctx, &cfg); err != nil {
			return nil, err
		}
		n.cfg = cfg
	}
	if cfg.Origin == "" {
		cfg.Origin = DefaultOrigin()
	}
	n.cfg = cfg
	keys, created, err := LoadKeys(&cfg)
	if err != nil {
		return nil, err
	}
	n.keys = keys
	for _, p := range created {
		log.Info("generated key", "file", p)
	}
	log.Info("checkpoint verifier key", "origin", cfg.Origin, "vkey", keys.VerifierKey)
	if cfg.UnsafeNoSync {
		log.Warn("fsync is OFF (unsafeNoSync): acknowledged events can be lost in a crash")
	}

	if n.store == nil {
		if n.store, err = n.openStore(ctx, StoreDir(cfg.DataDir), ledger.StoreOptions{NoSync: cfg.UnsafeNoSync}); err != nil {
			return nil, err
		}
	}
	st := n.store.State()
	log.Info("store open", "dir", StoreDir(cfg.DataDir), "size", st.Size, "root", st.Root.String())

	if err := n.startSecurity(&cfg); err != nil {
		return nil, err
	}
	n.ledger, err = ledger.New(ledger.Config{
		Store:                  n.store,
		Origin:                 cfg.Origin,
		Signer:                 keys.Signer,
		HMAC:                   keys.HMAC,
		MaxBatchEvents:         cfg.GroupCommit.MaxEvents,
		MaxBatchBytes:          cfg.GroupCommit.MaxBytes,
		MaxWait:                time.Duration(cfg.GroupCommit.MaxWait),
		CheckpointInterval:     time.Duration(cfg.CheckpointInterval),
		IdleCheckpointInterval: time.Duration(cfg.IdleCheckpointInterval),
		Committer:              n.instrument(n.committer()),
		Transform:              n.sec.transform(),
		Logger:                 log,
	})
	if err != nil {
		return nil, err
	}

	opts := append(append(n.metricsServerOptions(), n.grpcServerOptions()...), n.securityServerOptions()...)
	opts = append(opts, transportServerOptions()...)
	opts = append(opts, grpc.MaxRecvMsgSize(maxGRPCMessage), grpc.MaxSendMsgSize(maxGRPCMessage),
		grpc.ForceServerCodecV2(wire.Server()), // generated protobuf code, not reflection
		// Handlers block until their batch is durable, so many run at
		// once; reusing worker goroutines spares each call a new
		// goroutine and its stack growth (3.6% of server CPU with 32
		// clients appending).
		grpc.NumStreamWorkers(grpcStreamWorkers))
	n.grpc = grpc.NewServer(opts...)
	streamed, err := n.startFeed(n.grpc)
	if err != nil {
		return nil, err
	}
	ledgerSvc := api.NewLedgerService(api.LedgerOptions{Ledger: n.ledger, Streamed: streamed, VerifierKey: keys.VerifierKey, LinearizableCheckpoint: n.linearizable(), View: n.eventView(), Logger: log})
	ledgerSvc.Register(n.grpc)
	n.health = health.NewServer()
	healthpb.RegisterHealthServer(n.grpc, n.health)
	n.registerCluster(n.grpc)
	n.registerAdmin(n.grpc)
	if err := n.startHTTP(n.grpc, ledgerSvc); err != nil {
		return nil, err
	}
	reflection.Register(n.grpc)

	if n.grpcLis == nil {
		if n.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
		}
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(n.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("gRPC server stopped", "err", err)
		}
	}()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("serving gRPC", "addr", n.grpcLis.Addr().String())
	if err := n.ensureAdminToken(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// StoreDir is where the Pebble database lives inside the data directory.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "db") }

// GRPCAddr is the address the gRPC listener is bound to.
func (n *Node) GRPCAddr() string { return n.grpcLis.Addr().String() }

// Ledger returns the node's ledger.
func (n *Node) Ledger() *ledger.Ledger { return n.ledger }

// Keys returns the node's keys.
func (n *Node) Keys() *Keys { return n.keys }

// Close stops the node: listeners stop accepting and in-flight requests
// finish (until ctx expires, then they are cut), queued appends commit,
// then the store closes.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	n.once.Do(func() {
		if n.health != nil {
			n.health.Shutdown()
		}
		if n.grpc != nil {
			done := make(chan struct{})
			go func() { n.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				n.grpc.Stop()
				<-done
			}
		}
		n.wg.Wait()
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if n.ledger != nil {
			if err := n.ledger.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := n.closeCluster(); err != nil {
			errs = append(errs, err)
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
