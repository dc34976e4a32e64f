package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// TLSFiles configure TLS on the API listeners (gRPC and HTTP).
type TLSFiles struct {
	// CertFile and KeyFile are the server's certificate chain and key
	// (PEM). Both or neither.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile holds the CAs (PEM) whose client certificates are
	// accepted (mTLS). Clients may still authenticate with a token
	// instead; a certificate that does not verify fails the handshake.
	ClientCAFile string `json:"clientCAFile"`
}

// Enabled reports whether a server certificate is configured.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// ServerConfig loads the files into a server TLS configuration (TLS 1.2
// or later). extraCAs, when non-nil, are added to the client CA pool.
func (f TLSFiles) ServerConfig(extraCAs ...string) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls: certFile and keyFile are both required")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: server certificate: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	var cas []string
	if f.ClientCAFile != "" {
		cas = append(cas, f.ClientCAFile)
	}
	for _, p := range extraCAs {
		if p != "" {
			cas = append(cas, p)
		}
	}
	if len(cas) > 0 {
		pool := x509.NewCertPool()
		for _, p := range cas {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("tls: client CA: %w", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("tls: client CA %s holds no PEM certificate", p)
			}
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// IsLoopback reports whether a listen address binds only loopback
// interfaces ("127.0.0.1:7070", "[::1]:0", "localhost:8080"). An empty
// host (":7070") binds every interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
