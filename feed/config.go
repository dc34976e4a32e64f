package feed

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Delivery is the part of a sink's configuration that the runner uses;
// every sink's config embeds it. JSON names are camelCase.
type Delivery struct {
	// Name identifies the sink: its cursor key, metric label and status
	// line. Required, unique, [A-Za-z0-9._-].
	Name string `json:"name"`
	// Disabled keeps the sink configured but not running.
	Disabled bool `json:"disabled,omitempty"`
	// BatchSize is the most entries per delivery (default 500).
	BatchSize int `json:"batchSize,omitempty"`
	// BatchWait is how long a batch that is not full waits for more
	// entries (default 5ms).
	BatchWait Duration `json:"batchWait,omitempty"`
	// InFlight is how many batches may be sent and not yet acknowledged,
	// for sinks that can pipeline (Kafka); others deliver one at a time.
	// Default 1. More hides the receiver's latency: throughput rises, and
	// a restart or failover re-sends up to InFlight batches instead of
	// one (delivery is at-least-once either way; the cursor only moves
	// past acknowledged batches).
	InFlight int `json:"inFlight,omitempty"`
	// StartFrom is where a sink without a cursor starts: "oldest"
	// (index 0, the default) or "latest" (the end of the log when it
	// first runs).
	StartFrom string `json:"startFrom,omitempty"`
	// Timeout bounds one delivery attempt (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries, with jitter (defaults 100ms and 30s).
	MinBackoff Duration `json:"minBackoff,omitempty"`
	MaxBackoff Duration `json:"maxBackoff,omitempty"`
	// AlertAfter is how long a sink may fail before it raises an alert:
	// an error log, ledger_sink_alerting = 1 and Healthy() false. It
	// keeps retrying. Default 1m.
	AlertAfter Duration `json:"alertAfter,omitempty"`
	// DeadLetterFile, when set, receives (as NDJSON) entries that the
	// receiver rejects as malformed, so they no longer hold the sink
	// back. Without it such entries are retried until an operator acts.
	DeadLetterFile string `json:"deadLetterFile,omitempty"`
	// IncludeLeaf adds the canonical leaf bytes (base64) to each record.
	IncludeLeaf bool `json:"includeLeaf,omitempty"`
}

// Defaults of Delivery.
const (
	DefaultBatchSize  = 500
	DefaultBatchWait  = 5 * time.Millisecond
	DefaultTimeout    = 30 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultAlertAfter = time.Minute
)

// WithDefaults returns d with zero fields set to their defaults.
func (d Delivery) WithDefaults() Delivery {
	if d.BatchSize <= 0 {
		d.BatchSize = DefaultBatchSize
	}
	if d.BatchWait == 0 {
		d.BatchWait = Duration(DefaultBatchWait)
	}
	if d.InFlight <= 0 {
		d.InFlight = 1
	}
	if d.StartFrom == "" {
		d.StartFrom = "oldest"
	}
	if d.Timeout <= 0 {
		d.Timeout = Duration(DefaultTimeout)
	}
	if d.MinBackoff <= 0 {
		d.MinBackoff = Duration(DefaultMinBackoff)
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if d.MaxBackoff < d.MinBackoff {
		d.MaxBackoff = d.MinBackoff
	}
	if d.AlertAfter <= 0 {
		d.AlertAfter = Duration(DefaultAlertAfter)
	}
	return d
}

// ErrConfig reports a bad sink configuration.
var ErrConfig = errors.New("feed: bad configuration")

// Validate checks the fields of d.
func (d Delivery) Validate() error {
	if d.Name == "" {
		return fmt.Errorf("%w: sink without a name", ErrConfig)
	}
	for _, c := range d.Name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: sink name %q: only letters, digits, '.', '_' and '-'", ErrConfig, d.Name)
		}
	}
	switch d.StartFrom {
	case "", "oldest", "latest":
	default:
		return fmt.Errorf("%w: sink %s: startFrom %q is not oldest or latest", ErrConfig, d.Name, d.StartFrom)
	}
	if d.BatchSize < 0 || d.InFlight < 0 || d.BatchWait < 0 || d.Timeout < 0 || d.MinBackoff < 0 || d.MaxBackoff < 0 || d.AlertAfter < 0 {
		return fmt.Errorf("%w: sink %s: negative size or duration", ErrConfig, d.Name)
	}
	return nil
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("250ms", "5s", "1m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: duration %s: want a string like \"5s\"", ErrConfig, b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: duration %q: %v", ErrConfig, s, err)
	}
	*d = Duration(v)
	return nil
}

// TLSConfig configures TLS to a receiver. Files are PEM.
type TLSConfig struct {
	CAFile             string `json:"caFile,omitempty"`
	CertFile           string `json:"certFile,omitempty"`
	KeyFile            string `json:"keyFile,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// Build returns the *tls.Config; nil for a nil receiver.
func (c *TLSConfig) Build() (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls ca: %v", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls ca %s: no certificates", ErrConfig, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("%w: tls: certFile and keyFile go together", ErrConfig)
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls client certificate: %v", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Secret names where a secret is read from: a file (its content, less
// surrounding white space) or an environment variable. Secrets are never
// written in the config file itself.
type Secret struct {
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// IsZero reports whether no source is set.
func (s Secret) IsZero() bool { return s.File == "" && s.Env == "" }

// Read returns the secret; what names it in errors.
func (s Secret) Read(what string) (string, error) {
	switch {
	case s.File != "" && s.Env != "":
		return "", fmt.Errorf("%w: %s: give file or env, not both", ErrConfig, what)
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrConfig, what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%w: %s: file %s is empty", ErrConfig, what, s.File)
		}
		return v, nil
	case s.Env != "":
		v := os.Getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("%w: %s: environment variable %s is empty", ErrConfig, what, s.Env)
		}
		return v, nil
	}
	return "", nil
}
