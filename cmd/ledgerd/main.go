// Command ledgerd runs one node of the audit ledger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ledgerd:", err)
		return 2
	}
	log := node.NewLogger(stderr, &cfg)
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "ledgerd:", err)
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// parseFlags reads --config first, then lets every flag given on the
// command line override the file.
func parseFlags(args []string, stderr io.Writer) (node.Config, error) {
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := node.Defaults()
	configFile := fs.String("config", "", "JSON config file (flags override it)")
	dataDir := fs.String("data-dir", def.DataDir, "data directory (Pebble, keys)")
	grpcAddr := fs.String("grpc-addr", def.GRPCAddr, "gRPC listen address")
	httpAddr := fs.String("http-addr", def.HTTPAddr, "HTTP listen address")
	origin := fs.String("origin", "", "checkpoint origin (default: derived from the host name)")
	ckptKey := fs.String("checkpoint-key-file", "", "note signer key file (env LEDGER_CHECKPOINT_KEY; default DATA_DIR/checkpoint.key, generated)")
	hmacKey := fs.String("hmac-key-file", "", "HMAC signing key file (env AUDIT_SIGNING_KEY; default DATA_DIR/hmac.key, generated)")
	maxEvents := fs.Int("batch-max-events", 0, "group commit: most events in one batch (default 10000)")
	maxBytes := fs.Int("batch-max-bytes", 0, "group commit: most bytes in one batch (default 16 MiB)")
	maxWait := fs.Duration("batch-max-wait", 0, "group commit: how long to wait for more appends (default 0: none)")
	ckptEvery := fs.Duration("checkpoint-interval", time.Duration(def.CheckpointInterval), "least time between two signed checkpoints while a caller waits for one")
	ckptIdle := fs.Duration("idle-checkpoint-interval", time.Duration(def.IdleCheckpointInterval), "least time between two signed checkpoints while nobody waits for one")
	noSync := fs.Bool("unsafe-nosync", false, "commit without fsync (benchmarks only: crashes lose acknowledged events)")
	logLevel := fs.String("log-level", def.LogLevel, "debug, info, warn or error")
	logFormat := fs.String("log-format", def.LogFormat, "text or json")
	nodeID := fs.String("node-id", "", "cluster: this node's id (turns on cluster mode)")
	raftAddr := fs.String("raft-addr", "", "cluster: Raft transport listen address (host:port)")
	raftAdv := fs.String("raft-advertise-addr", "", "cluster: Raft address the other nodes dial (default --raft-addr)")
	apiAdv := fs.String("api-advertise-addr", "", "cluster: gRPC address the other nodes dial (default the gRPC listener's)")
	bootstrap := fs.Bool("bootstrap", false, "cluster: start a new cluster with this node (no-op once it has state)")
	join := fs.String("join", "", "cluster: join the cluster through any member's gRPC API address")
	tokenFile := fs.String("cluster-token-file", "", "cluster: shared secret for node-to-node calls (env LEDGERD_CLUSTER_TOKEN)")
	tlsCert := fs.String("tls-cert", "", "cluster: this node's certificate (PEM), for Raft mutual TLS and the gRPC API")
	tlsKey := fs.String("tls-key", "", "cluster: this node's private key (PEM)")
	tlsCA := fs.String("tls-ca", "", "cluster: the cluster CA certificate (PEM)")
	allowPlain := fs.Bool("allow-plaintext", false, "cluster: allow plain TCP off loopback (trusted networks only)")
	heartbeat := fs.Duration("raft-heartbeat-timeout", 0, "cluster: Raft heartbeat timeout (default 1s)")
	election := fs.Duration("raft-election-timeout", 0, "cluster: Raft election timeout (default 1s)")
	clientCA := fs.String("client-ca", "", "CA certificates (PEM) of API client certificates (mTLS; roles from security.auth.clientCertificates)")
	insecureFlag := fs.Bool("insecure", false, "allow plaintext API listeners on non-loopback addresses (tokens cross the network in clear)")
	encKey := fs.String("encryption-key-file", "", "master encryption key file, 64 hex digits (env AUDIT_ENCRYPTION_KEY; default DATA_DIR/encryption.key, generated)")
	publicProofs := fs.Bool("public-proofs", false, "serve checkpoints and proofs to callers without credentials")
	if err := fs.Parse(args); err != nil {
		return node.Config{}, err
	}
	if fs.NArg() > 0 {
		return node.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := def
	if *configFile != "" {
		var err error
		if cfg, err = node.LoadConfig(*configFile); err != nil {
			return cfg, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "grpc-addr":
			cfg.GRPCAddr = *grpcAddr
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		case "origin":
			cfg.Origin = *origin
		case "checkpoint-key-file":
			cfg.Keys.CheckpointKeyFile = *ckptKey
		case "hmac-key-file":
			cfg.Keys.HMACKeyFile = *hmacKey
		case "batch-max-events":
			cfg.GroupCommit.MaxEvents = *maxEvents
		case "batch-max-bytes":
			cfg.GroupCommit.MaxBytes = *maxBytes
		case "batch-max-wait":
			cfg.GroupCommit.MaxWait = node.Duration(*maxWait)
		case "checkpoint-interval":
			cfg.CheckpointInterval = node.Duration(*ckptEvery)
		case "idle-checkpoint-interval":
			cfg.IdleCheckpointInterval = node.Duration(*ckptIdle)
		case "unsafe-nosync":
			cfg.UnsafeNoSync = *noSync
		case "log-level":
			cfg.LogLevel = *logLevel
		case "log-format":
			cfg.LogFormat = *logFormat
		case "client-ca":
			cfg.Security.TLS.ClientCAFile = *clientCA
		case "insecure":
			cfg.Security.Insecure = *insecureFlag
		case "encryption-key-file":
			cfg.Security.Encryption.KeyFile = *encKey
		case "public-proofs":
			cfg.Security.Auth.PublicProofs = *publicProofs
		case "node-id":
			cfg.Cluster.NodeID = *nodeID
		case "raft-addr":
			cfg.Cluster.RaftAddr = *raftAddr
		case "raft-advertise-addr":
			cfg.Cluster.AdvertiseAddr = *raftAdv
		case "api-advertise-addr":
			cfg.Cluster.APIAdvertiseAddr = *apiAdv
		case "bootstrap":
			cfg.Cluster.Bootstrap = *bootstrap
		case "join":
			cfg.Cluster.Join = *join
		case "cluster-token-file":
			cfg.Cluster.TokenFile = *tokenFile
		case "tls-cert":
			cfg.Cluster.TLSCertFile = *tlsCert
		case "tls-key":
			cfg.Cluster.TLSKeyFile = *tlsKey
		case "tls-ca":
			cfg.Cluster.TLSCAFile = *tlsCA
		case "allow-plaintext":
			cfg.Cluster.AllowPlaintext = *allowPlain
		case "raft-heartbeat-timeout":
			cfg.Cluster.HeartbeatTimeout = node.Duration(*heartbeat)
		case "raft-election-timeout":
			cfg.Cluster.ElectionTimeout = node.Duration(*election)
		}
	})
	return cfg, cfg.Validate()
}
