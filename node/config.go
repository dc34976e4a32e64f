package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/auditledger/ledgerd/feed/sinks"
)

// Config is everything one ledgerd process needs. It is read from a JSON
// file (camelCase keys, unknown keys rejected) and then overridden by
// flags. Later features add their own sections.
type Config struct {
	DataDir  string `json:"dataDir"`
	GRPCAddr string `json:"grpcAddr"`
	HTTPAddr string `json:"httpAddr"`
	// Origin is the first line of every checkpoint. Default: derived from
	// the host name.
	Origin string `json:"origin"`

	Keys        KeysConfig        `json:"keys"`
	GroupCommit GroupCommitConfig `json:"groupCommit"`
	// CheckpointInterval is the least time between two signed
	// checkpoints while a caller waits for one (an append with wait, a
	// proof of a new entry, a feed subscriber); IdleCheckpointInterval
	// while nobody does (see ledger.Config).
	CheckpointInterval     Duration `json:"checkpointInterval"`
	IdleCheckpointInterval Duration `json:"idleCheckpointInterval"`
	// Cluster runs the node as a member of a Raft cluster (cluster.go).
	Cluster ClusterConfig `json:"cluster"`
	// Security: tokens, roles, TLS, field encryption, self-audit
	// (security.go).
	Security SecurityConfig `json:"security"`

	// UnsafeNoSync commits without fsync: acknowledged events can be lost
	// in a crash. For benchmarks that say so, never for production.
	UnsafeNoSync bool `json:"unsafeNoSync"`

	LogLevel  string `json:"logLevel"`  // debug, info, warn, error
	LogFormat string `json:"logFormat"` // text or json

	// Sinks are the change feed's SIEM sinks (package feed/sinks); none
	// by default.
	Sinks sinks.Config `json:"sinks"`
}

// KeysConfig says where keys come from. Each key is taken, in order, from
// its environment variable, its file, or DATA_DIR (created on first start).
type KeysConfig struct {
	// CheckpointKeyFile holds the note signer key
	// (PRIVATE+KEY+name+hash+key). Env LEDGER_CHECKPOINT_KEY.
	CheckpointKeyFile string `json:"checkpointKeyFile"`
	// HMACKeyFile holds the entry signing key (at least 16 bytes; a
	// trailing newline is ignored). Env AUDIT_SIGNING_KEY.
	HMACKeyFile string `json:"hmacKeyFile"`
	// HMACOldKeyFiles hold retired signing keys that still verify.
	HMACOldKeyFiles []string `json:"hmacOldKeyFiles"`
}

// GroupCommitConfig bounds one ledger batch.
type GroupCommitConfig struct {
	MaxEvents int      `json:"maxEvents"`
	MaxBytes  int      `json:"maxBytes"`
	MaxWait   Duration `json:"maxWait"`
}

// Duration is a time.Duration written as a Go duration string ("2ms").
type Duration time.Duration

// UnmarshalJSON parses "2ms"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"2ms\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults returns the embedded defaults: a single node on loopback.
func Defaults() Config {
	return Config{
		DataDir:                "ledger-data",
		GRPCAddr:               "127.0.0.1:7070",
		HTTPAddr:               "127.0.0.1:8080",
		CheckpointInterval:     Duration(2 * time.Millisecond),
		IdleCheckpointInterval: Duration(200 * time.Millisecond),
		LogLevel:               "info",
		LogFormat:              "text",
	}
}

// LoadConfig reads a JSON config file over the defaults.
func LoadConfig(path string) (Config, error) {
	cfg := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := DecodeConfig(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// DecodeConfig decodes JSON into cfg, rejecting unknown keys by name.
func DecodeConfig(b []byte, cfg *Config) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		// encoding/json says `json: unknown field "x"`; keep it, it names the key.
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

// Validate checks the config before anything starts.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("config: dataDir is required")
	}
	if c.GRPCAddr == "" {
		return fmt.Errorf("config: grpcAddr is required")
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: logLevel %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("config: logFormat %q is not text or json", c.LogFormat)
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if c.GroupCommit.MaxEvents < 0 || c.GroupCommit.MaxBytes < 0 || c.GroupCommit.MaxWait < 0 {
		return fmt.Errorf("config: groupCommit limits must not be negative")
	}
	if err := c.Sinks.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
