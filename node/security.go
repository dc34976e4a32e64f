package node

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/auditledger/ledgerd/api"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/selfaudit"
)

// SecurityConfig is the security section of Config: authentication and
// roles, TLS of the API listeners, field encryption and self-audit.
type SecurityConfig struct {
	Auth       auth.Config       `json:"auth"`
	TLS        auth.TLSFiles     `json:"tls"`
	Encryption fieldcrypt.Config `json:"encryption"`
	SelfAudit  SelfAuditConfig   `json:"selfAudit"`
	// Insecure allows plaintext API listeners on non-loopback addresses
	// (flag --insecure). Without TLS, tokens then cross the network in
	// clear; the node says so in its log.
	Insecure bool `json:"insecure"`

	// Banner receives the initial admin token, once, on first start
	// (default os.Stderr). It is not the log: logs never hold secrets.
	Banner io.Writer `json:"-"`

	// noAuth leaves the auth interceptors out: only this package's
	// benchmarks set it, to measure what authentication costs.
	noAuth bool
}

// SelfAuditConfig configures the recording of API reads in the ledger.
type SelfAuditConfig struct {
	Disabled      bool     `json:"disabled"`
	FlushInterval Duration `json:"flushInterval"` // default 200ms
}

// AdminTokenFile is where the initial admin token is written, mode 0600.
const AdminTokenFile = "admin.token"

// EncryptionKeyFile is the generated master encryption key.
const EncryptionKeyFile = "encryption.key"

// security is what the security section adds to a running node.
type security struct {
	cfg      SecurityConfig
	tokens   *auth.Tokens
	authn    *auth.Authenticator
	guard    *auth.Guard
	crypter  *fieldcrypt.Crypter // nil when encryption is off
	recorder *selfaudit.Recorder // nil when self-audit is off
	admin    string              // the configured admin token, if any
	creds    credentials.TransportCredentials
	// clusterCAs, set when the API also trusts another client CA, are
	// the only roots cluster-internal calls may present certificates of.
	clusterCAs []*x509.Certificate
}

// listenersLoopback reports whether every API listener is on loopback.
func listenersLoopback(cfg *Config) bool {
	return auth.IsLoopback(cfg.GRPCAddr) && (cfg.HTTPAddr == "" || auth.IsLoopback(cfg.HTTPAddr))
}

// startSecurity checks the listeners, loads the encryption key and builds
// the token table, the authenticator and the crypter. It runs after the
// store is open and before the ledger is built (the crypter is the
// ledger's Transform).
func (n *Node) startSecurity(cfg *Config) error {
	sc := cfg.Security
	s := &security{cfg: sc}
	n.sec = s
	clusterTLS := cfg.Cluster.Enabled() && cfg.Cluster.TLSCertFile != ""
	apiTLS := sc.TLS
	if !apiTLS.Enabled() && cfg.Cluster.TLSCertFile != "" {
		// One node certificate (--tls-cert, --tls-key) serves the API too.
		apiTLS.CertFile, apiTLS.KeyFile = cfg.Cluster.TLSCertFile, cfg.Cluster.TLSKeyFile
	}
	tlsOn := apiTLS.Enabled()
	if !tlsOn {
		if !listenersLoopback(cfg) {
			if !sc.Insecure {
				return fmt.Errorf("security: refusing plaintext API listeners on non-loopback addresses (grpc %s, http %s): configure security.tls (--tls-cert, --tls-key) or pass --insecure", cfg.GRPCAddr, cfg.HTTPAddr)
			}
			n.log.Warn("security: INSECURE: plaintext API listeners on non-loopback addresses; tokens cross the network in clear", "grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr)
		} else {
			n.log.Info("security: plaintext API listeners on loopback only")
		}
	}
	if sc.Auth.AnonymousRole != "" {
		if !listenersLoopback(cfg) {
			return fmt.Errorf("security: anonymousRole needs every API listener on loopback")
		}
		n.log.Warn("security: callers without credentials get a role (anonymousRole); for tests and local use only", "role", sc.Auth.AnonymousRole)
	}
	if apiTLS.Enabled() {
		var extra []string
		if clusterTLS {
			extra = append(extra, cfg.Cluster.TLSCAFile) // members present cluster certificates
		}
		tc, err := apiTLS.ServerConfig(extra...)
		if err != nil {
			return err
		}
		if clusterTLS && apiTLS.ClientCAFile != "" && apiTLS.ClientCAFile != cfg.Cluster.TLSCAFile {
			if s.clusterCAs, err = readCerts(cfg.Cluster.TLSCAFile); err != nil {
				return err
			}
		}
		s.creds = credentials.NewTLS(tc)
		n.log.Info("security: TLS on the API", "mTLS", tc.ClientCAs != nil)
	}

	admin, err := configuredAdminToken(sc.Auth.AdminTokenFile)
	if err != nil {
		return err
	}
	s.admin = admin
	commit := n.kvCommitter()
	s.tokens = auth.NewTokens(n.store, commit, nil)
	if s.authn, err = auth.NewAuthenticator(s.tokens, sc.Auth, admin); err != nil {
		return fmt.Errorf("security: %w", err)
	}

	if !sc.Encryption.Disabled {
		master, created, err := fieldcrypt.LoadMasterKeys(sc.Encryption.KeyFile, filepath.Join(cfg.DataDir, EncryptionKeyFile), sc.Encryption.OldKeyFiles, !cfg.Cluster.Enabled() || cfg.Cluster.Bootstrap)
		if err != nil {
			return fmt.Errorf("security: %w", err)
		}
		if created != "" {
			n.log.Info("generated key", "file", created)
		}
		var watch func(applied func([]ledger.KV), restored func())
		if n.cluster != nil {
			watch = n.cluster.raft.ObserveKV // other nodes' key writes reach the crypter's index
		}
		if s.crypter, err = fieldcrypt.New(fieldcrypt.Options{Config: sc.Encryption, Master: master, Store: n.store, Commit: commit, Logger: n.log, Watch: watch}); err != nil {
			return fmt.Errorf("security: %w", err)
		}
		n.log.Info("security: field encryption on", "masterKey", master.CurrentID(), "subjectKeys", s.crypter.SubjectsEnabled())
	} else {
		n.log.Warn("security: field encryption is OFF: sensitive and personal fields are stored in clear")
	}
	return nil
}

// readCerts reads the PEM certificates of a file.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("security: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("security: %s holds no certificate", path)
	}
	return out, nil
}

// kvCommitter is where replicated security state is written: Raft's
// committer in cluster mode, the store directly on a single node.
func (n *Node) kvCommitter() ledger.Committer {
	if c := n.committer(); c != nil {
		return c
	}
	return ledger.LocalCommitter{Store: n.store}
}

func configuredAdminToken(file string) (string, error) {
	if v := strings.TrimSpace(os.Getenv("LEDGER_ADMIN_TOKEN")); v != "" {
		return v, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("security: admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// transform is the ledger's Transform: field encryption, or nil.
func (s *security) transform() func([]ledger.Event, func(int, *ledger.Event) error) error {
	if s == nil || s.crypter == nil {
		return nil
	}
	return s.crypter.TransformEach
}

// securityServerOptions starts self-audit and returns the gRPC server
// options: the auth interceptors and, with TLS configured, the server
// credentials (they replace the cluster's, whose CA they include).
func (n *Node) securityServerOptions() []grpc.ServerOption {
	s := n.sec
	var audit auth.Auditor
	if !s.cfg.SelfAudit.Disabled {
		s.recorder = selfaudit.New(selfaudit.Options{Appender: n.ledger, FlushInterval: time.Duration(s.cfg.SelfAudit.FlushInterval), Logger: n.log})
		audit = s.recorder
		rec := s.recorder
		n.closers = append(n.closers, func(ctx context.Context) error { return rec.Close(ctx) })
	}
	s.guard = auth.NewGuard(s.authn, auth.DefaultMethods(), audit, n.log)
	if cas := s.clusterCAs; cas != nil {
		// The Cluster service accepts any verified certificate; API
		// clients' certificates verify too, so keep them out of it.
		s.guard.SetInternalCheck(func(c auth.Credentials) error {
			if len(c.Chain) == 0 {
				return nil // the cluster token or loopback: the service decides
			}
			root := c.Chain[len(c.Chain)-1]
			for _, ca := range cas {
				if root.Equal(ca) {
					return nil
				}
			}
			return fmt.Errorf("%w: cluster-internal calls need a certificate of the cluster CA", auth.ErrPermissionDenied)
		})
	}
	var opts []grpc.ServerOption
	if !s.cfg.noAuth {
		opts = append(opts, grpc.ChainUnaryInterceptor(s.guard.UnaryInterceptor()), grpc.ChainStreamInterceptor(s.guard.StreamInterceptor()))
	}
	if s.creds != nil {
		opts = append(opts, grpc.Creds(s.creds))
	}
	return opts
}

// eventView decrypts events read through the API for the caller.
func (n *Node) eventView() api.EventView {
	if n.sec == nil || n.sec.crypter == nil {
		return nil
	}
	c := n.sec.crypter
	return func(ctx context.Context, e *ledger.Event) {
		c.Reveal(e, auth.FromContext(ctx).Can(auth.PermSensitive))
	}
}

// registerAdmin adds the Admin service.
func (n *Node) registerAdmin(g grpc.ServiceRegistrar) {
	api.NewAdminService(api.AdminOptions{Tokens: n.sec.tokens, Crypter: n.sec.crypter, Appender: n.ledger, Logger: n.log}).Register(g)
}

// Guard is the node's authentication and authorization guard (for the
// HTTP API's middleware).
func (n *Node) Guard() *auth.Guard { return n.sec.guard }

// Crypter is the node's field encryption, or nil when it is off.
func (n *Node) Crypter() *fieldcrypt.Crypter { return n.sec.crypter }

// Tokens is the node's API token table.
func (n *Node) Tokens() *auth.Tokens { return n.sec.tokens }

// SelfAudit is the node's self-audit recorder, or nil when it is off.
func (n *Node) SelfAudit() *selfaudit.Recorder { return n.sec.recorder }

// ensureAdminToken creates the initial admin token on a node's first
// start, unless an admin token is configured or tokens exist already:
// it is written to DATA_DIR/admin.token (mode 0600) and printed once to
// the banner writer. In a cluster only the bootstrapping node does it.
func (n *Node) ensureAdminToken(ctx context.Context) error {
	s := n.sec
	if s.admin != "" {
		n.log.Info("security: using the configured admin token")
		return nil
	}
	if n.cfg.Cluster.Enabled() && !n.cfg.Cluster.Bootstrap {
		return nil
	}
	path := filepath.Join(n.cfg.DataDir, AdminTokenFile)
	if _, err := os.Stat(path); err == nil {
		n.log.Info("security: admin token file present", "file", path)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("security: %w", err)
	}
	empty, err := s.tokens.Empty()
	if err != nil {
		return err
	}
	if !empty {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tok, info, err := s.tokens.Create(cctx, auth.RoleAdmin, "initial admin", 0, "ledgerd")
	if err != nil {
		return fmt.Errorf("security: initial admin token: %w", err)
	}
	if err := writeSecret(path, []byte(tok.String()+"\n")); err != nil {
		if _, rerr := s.tokens.Revoke(cctx, info.ID, "ledgerd"); rerr != nil {
			n.log.Error("security: revoking the unsaved initial admin token", "id", info.ID, "err", rerr)
		}
		return fmt.Errorf("security: initial admin token: %w", err)
	}
	n.log.Info("security: created the initial admin token", "id", info.ID, "file", path)
	w := s.cfg.Banner
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "\nledgerd: initial admin token (shown once; also in %s):\n\n    %s\n\nUse it with: ledgerctl --token \"$(cat %s)\" ... (or LEDGER_TOKEN)\n\n", path, tok.String(), path)
	return nil
}
