package ctl

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// tlsFlags are the client side of ledgerd's TLS: --tls (system roots),
// --ca (the CA that signed the server's certificate), --cert and --key
// (a client certificate, for mTLS), --server-name. Any of them turns TLS
// on; without them the connection is plaintext (loopback development).
type tlsFlags struct {
	enabled    bool
	ca         string
	cert, key  string
	serverName string
}

// transportCredentials builds the connection's credentials.
func (f *tlsFlags) transportCredentials() (credentials.TransportCredentials, error) {
	if !f.enabled && f.ca == "" && f.cert == "" && f.key == "" && f.serverName == "" {
		return insecure.NewCredentials(), nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName}
	if f.ca != "" {
		b, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--ca: %s holds no PEM certificate", f.ca)
		}
		c.RootCAs = pool
	}
	if (f.cert == "") != (f.key == "") {
		return nil, fmt.Errorf("--cert and --key go together")
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(c), nil
}
