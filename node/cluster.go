package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/raft"
)

// ClusterConfig is the cluster section of Config. A node with a NodeID
// runs in cluster mode: its writes go through Raft.
type ClusterConfig struct {
	// NodeID names this node in the cluster (never reused).
	NodeID string `json:"nodeId"`
	// RaftAddr is where the Raft transport listens; AdvertiseAddr, when
	// set, is what the other nodes dial instead.
	RaftAddr      string `json:"raftAddr"`
	AdvertiseAddr string `json:"advertiseAddr"`
	// APIAdvertiseAddr is the gRPC address the other nodes dial to reach
	// this one (default: the gRPC listener's address).
	APIAdvertiseAddr string `json:"apiAdvertiseAddr"`
	// Bootstrap starts a new cluster with this node as its only voter (a
	// no-op on later starts). Join is any member's gRPC API address: the
	// leader adds this node and hands it the cluster's keys and origin.
	Bootstrap bool   `json:"bootstrap"`
	Join      string `json:"join"`
	// TokenFile holds the shared cluster secret (env
	// LEDGERD_CLUSTER_TOKEN). Without one, cluster-internal calls are
	// accepted from loopback (when the API listens on loopback) and from
	// peers with a client certificate of the cluster CA.
	TokenFile string `json:"tokenFile"`
	// TLS: this node's certificate and key and the cluster CA, for the
	// Raft transport (mutual TLS) and the gRPC API (clients may present a
	// certificate; members do). Required off loopback unless
	// AllowPlaintext.
	TLSCertFile    string `json:"tlsCertFile"`
	TLSKeyFile     string `json:"tlsKeyFile"`
	TLSCAFile      string `json:"tlsCAFile"`
	AllowPlaintext bool   `json:"allowPlaintext"`

	// Raft timing (defaults: hashicorp/raft's, 1s heartbeat and election).
	HeartbeatTimeout  Duration `json:"heartbeatTimeout"`
	ElectionTimeout   Duration `json:"electionTimeout"`
	SnapshotThreshold uint64   `json:"snapshotThreshold"`
	// SyncStore fsyncs the ledger's Pebble writes on every node too. Off
	// by default: the Raft log is fsynced before a write is acknowledged
	// and replay into the store is idempotent (see package raft).
	SyncStore bool `json:"syncStore"`
}

// Enabled reports whether the node runs in cluster mode.
func (c *ClusterConfig) Enabled() bool { return c.NodeID != "" }

func (c *ClusterConfig) validate() error {
	if !c.Enabled() {
		if c.Bootstrap || c.Join != "" || c.RaftAddr != "" {
			return fmt.Errorf("config: cluster: bootstrap, join and raftAddr need a nodeId")
		}
		return nil
	}
	if c.RaftAddr == "" {
		return fmt.Errorf("config: cluster: raftAddr is required with nodeId")
	}
	if c.Bootstrap && c.Join != "" {
		return fmt.Errorf("config: cluster: bootstrap and join exclude each other")
	}
	if n := btoi(c.TLSCertFile != "") + btoi(c.TLSKeyFile != "") + btoi(c.TLSCAFile != ""); n != 0 && n != 3 {
		return fmt.Errorf("config: cluster: TLS needs tlsCertFile, tlsKeyFile and tlsCAFile")
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *ClusterConfig) tlsFiles() raft.TLSFiles {
	return raft.TLSFiles{CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile, CAFile: c.TLSCAFile}
}

// RaftDir is where Raft keeps its log and snapshots in the data directory.
func RaftDir(dataDir string) string { return filepath.Join(dataDir, "raft") }

// Names of the keys a joining node receives.
const (
	joinKeyCheckpoint = "checkpoint.key"
	joinKeyHMAC       = "hmac.key"
	joinKeyEncryption = "encryption.key"
	joinKeyOrigin     = "origin"
	originFile        = "origin"
)

// clusterState is what cluster mode adds to a Node.
type clusterState struct {
	raft    *raft.Node
	tlsConf *tls.Config
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startCluster runs before keys are loaded: it opens the store and the
// gRPC listener (the other nodes need its address), starts Raft, and
// bootstraps or joins. A joining node writes the keys and origin it
// receives into the data directory, where LoadKeys then finds them.
func (n *Node) startCluster(ctx context.Context, cfg *Config) (err error) {
	cc := &cfg.Cluster
	n.cluster = &clusterState{stop: make(chan struct{})}
	if cc.tlsFiles().Enabled() {
		var err error
		if n.cluster.tlsConf, err = cc.tlsFiles().Load(); err != nil {
			return err
		}
	}
	token := strings.TrimSpace(os.Getenv("LEDGERD_CLUSTER_TOKEN"))
	if token == "" && cc.TokenFile != "" {
		b, err := os.ReadFile(cc.TokenFile)
		if err != nil {
			return fmt.Errorf("cluster token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if cfg.Origin == "" {
		if b, err := os.ReadFile(filepath.Join(cfg.DataDir, originFile)); err == nil {
			cfg.Origin = strings.TrimSpace(string(b))
		}
	}

	if n.store, err = n.openStore(ctx, StoreDir(cfg.DataDir), ledger.StoreOptions{NoSync: cfg.UnsafeNoSync || !cc.SyncStore}); err != nil {
		return err
	}
	if n.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	defer func() {
		if err != nil && n.grpc == nil {
			n.grpcLis.Close() // nobody serves it yet; Close would miss it
		}
	}()
	apiAddr := cc.APIAdvertiseAddr
	if apiAddr == "" {
		apiAddr = n.grpcLis.Addr().String()
	}
	n.cluster.raft, err = raft.Open(raft.Config{
		ID:                cc.NodeID,
		Dir:               RaftDir(cfg.DataDir),
		Store:             n.store,
		RaftAddr:          cc.RaftAddr,
		AdvertiseAddr:     cc.AdvertiseAddr,
		TLS:               n.cluster.tlsConf,
		AllowPlaintext:    cc.AllowPlaintext,
		APIAddr:           apiAddr,
		Token:             token,
		HeartbeatTimeout:  time.Duration(cc.HeartbeatTimeout),
		ElectionTimeout:   time.Duration(cc.ElectionTimeout),
		SnapshotThreshold: cc.SnapshotThreshold,
		Registerer:        n.Registry(),
		Logger:            n.log,
	})
	if err != nil {
		return err
	}
	has, err := n.cluster.raft.HasState()
	if err != nil {
		return err
	}
	switch {
	case cc.Bootstrap:
		if err := n.cluster.raft.Bootstrap(); err != nil {
			return err
		}
	case cc.Join != "" && (!has || !keysPresent(cfg)):
		jctx, cancel := context.WithTimeout(ctx, time.Minute)
		keys, err := n.cluster.raft.Join(jctx, cc.Join)
		cancel()
		if err != nil {
			return err
		}
		if err := adoptClusterKeys(cfg, keys); err != nil {
			return err
		}
	case !has:
		return fmt.Errorf("cluster: node %s has no Raft state: start it with --bootstrap (new cluster) or --join <member API address>", cc.NodeID)
	}
	if !cc.Bootstrap && !keysPresent(cfg) {
		// Generating keys here would make this node sign other checkpoints
		// and entries than the rest of the cluster.
		return fmt.Errorf("cluster: node %s has no keys: --join a member to receive the cluster's, or give the cluster's key files", cc.NodeID)
	}
	if cfg.Origin == "" {
		cfg.Origin = DefaultOrigin()
	}
	return writeIfMissing(filepath.Join(cfg.DataDir, originFile), []byte(cfg.Origin+"\n"))
}

// keysPresent reports whether LoadKeys would find both keys rather than
// generate them.
func keysPresent(cfg *Config) bool {
	present := func(env, file, def string) bool {
		if os.Getenv(env) != "" {
			return true
		}
		if file == "" {
			file = filepath.Join(cfg.DataDir, def)
		}
		_, err := os.Stat(file)
		return err == nil
	}
	return present("LEDGER_CHECKPOINT_KEY", cfg.Keys.CheckpointKeyFile, CheckpointKeyFile) &&
		present("AUDIT_SIGNING_KEY", cfg.Keys.HMACKeyFile, HMACKeyFile)
}

// adoptClusterKeys writes the keys and origin received on join where
// LoadKeys reads them. Keys this node already has must be the cluster's.
func adoptClusterKeys(cfg *Config, keys map[string][]byte) error {
	if o := strings.TrimSpace(string(keys[joinKeyOrigin])); o != "" {
		if cfg.Origin != "" && cfg.Origin != o {
			return fmt.Errorf("cluster: this node's origin %q differs from the cluster's %q", cfg.Origin, o)
		}
		cfg.Origin = o
	}
	for _, kf := range keyFiles(cfg) {
		name, env, file := kf.name, kf.env, kf.file
		v := bytes.TrimSpace(keys[name])
		if len(v) == 0 {
			continue // the operator gives every node the same key files
		}
		if cur := os.Getenv(env); cur != "" {
			if cur != string(v) {
				return fmt.Errorf("cluster: %s from the environment differs from the cluster's", name)
			}
			continue
		}
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			if !bytes.Equal(bytes.TrimSpace(b), v) {
				return fmt.Errorf("cluster: %s differs from the cluster's; remove it to receive the cluster's", file)
			}
		case errors.Is(err, fs.ErrNotExist):
			if err := writeSecret(file, append(v, '\n')); err != nil {
				return err
			}
		default:
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// keyFile is where one key lives: its join name, environment variable
// and file.
type keyFile struct{ name, env, file string }

func keyFiles(cfg *Config) []keyFile {
	ck := cfg.Keys.CheckpointKeyFile
	if ck == "" {
		ck = filepath.Join(cfg.DataDir, CheckpointKeyFile)
	}
	hk := cfg.Keys.HMACKeyFile
	if hk == "" {
		hk = filepath.Join(cfg.DataDir, HMACKeyFile)
	}
	ek := cfg.Security.Encryption.KeyFile
	if ek == "" {
		ek = filepath.Join(cfg.DataDir, EncryptionKeyFile)
	}
	return []keyFile{
		{joinKeyCheckpoint, "LEDGER_CHECKPOINT_KEY", ck},
		{joinKeyHMAC, "AUDIT_SIGNING_KEY", hk},
		{joinKeyEncryption, "AUDIT_ENCRYPTION_KEY", ek},
	}
}

// clusterKeys reads this node's keys for a joining node: each from its
// environment variable or its file; keys the node does not have (field
// encryption off) are left out.
func clusterKeys(cfg *Config) (map[string][]byte, error) {
	out := map[string][]byte{joinKeyOrigin: []byte(cfg.Origin)}
	for _, kf := range keyFiles(cfg) {
		if v := os.Getenv(kf.env); v != "" {
			out[kf.name] = []byte(strings.TrimSpace(v))
			continue
		}
		b, err := os.ReadFile(kf.file)
		switch {
		case err == nil:
			out[kf.name] = bytes.TrimSpace(b)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	return out, nil
}

func writeIfMissing(path string, b []byte) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// committer is the ledger's committer: Raft's in cluster mode, the
// ledger's local default otherwise.
func (n *Node) committer() ledger.Committer {
	if n.cluster == nil {
		return nil
	}
	return n.cluster.raft.Committer()
}

// linearizable is the API's fresh-checkpoint hook (nil on one node).
func (n *Node) linearizable() func(context.Context) (*ledger.Checkpoint, error) {
	if n.cluster == nil {
		return nil
	}
	l := n.ledger
	return func(ctx context.Context) (*ledger.Checkpoint, error) {
		return n.cluster.raft.LinearizableCheckpoint(l)(ctx)
	}
}

// grpcServerOptions adds TLS to the gRPC server in cluster mode with
// certificates: clients verify the node; cluster members present their
// certificate too (ordinary clients may omit one).
func (n *Node) grpcServerOptions() []grpc.ServerOption {
	if n.cluster == nil || n.cluster.tlsConf == nil {
		return nil
	}
	c := n.cluster.tlsConf.Clone()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(c))}
}

// registerCluster adds the Cluster service and keeps health in step with
// the cluster's alarms (divergence, a state machine stopped on a bad
// entry).
func (n *Node) registerCluster(g *grpc.Server) {
	if n.cluster == nil {
		return
	}
	cfg := n.cfg
	raft.NewService(n.cluster.raft, raft.ServiceOptions{
		Ledger:   n.ledger,
		JoinKeys: func() (map[string][]byte, error) { return clusterKeys(&cfg) },
	}).Register(g)
	cs := n.cluster
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last error
		for {
			select {
			case <-cs.stop:
				return
			case <-t.C:
			}
			err := cs.raft.Healthy()
			if (err == nil) != (last == nil) {
				st := healthpb.HealthCheckResponse_SERVING
				if err != nil {
					st = healthpb.HealthCheckResponse_NOT_SERVING
					n.log.Error("cluster: unhealthy", "err", err)
				}
				n.health.SetServingStatus("", st)
			}
			last = err
		}
	}()
	n.closers = append(n.closers, func(context.Context) error {
		close(cs.stop)
		cs.wg.Wait()
		// Registered after self-audit's closer, so it runs before it and
		// before the ledger drains: from here a write that finds no leader
		// (quorum gone) fails at once instead of holding up the shutdown.
		cs.raft.Stopping()
		return nil
	})
}

// closeCluster stops Raft; it runs after the ledger has drained its
// queue (which commits through Raft) and before the store closes.
func (n *Node) closeCluster() error {
	if n.cluster == nil || n.cluster.raft == nil {
		return nil
	}
	return n.cluster.raft.Close()
}

// Cluster returns the node's Raft member, or nil on a single node.
func (n *Node) Cluster() *raft.Node {
	if n.cluster == nil {
		return nil
	}
	return n.cluster.raft
}
