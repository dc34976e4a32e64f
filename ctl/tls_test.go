package ctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/node"
)

// writeCert issues a certificate for cn (signed by parent, or
// self-signed CA when parent is nil) into dir; it returns the cert and
// key paths and the parsed certificate and key.
func writeCert(t *testing.T, dir, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, server bool) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	cp, kp := filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cp, kp, c, key
}

func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	caFile, _, ca, caKey := writeCert(t, dir, "test-ca", nil, nil, false)
	srvCert, srvKey, _, _ := writeCert(t, dir, "ledgerd", ca, caKey, true)
	opsCert, opsKey, _, _ := writeCert(t, dir, "ops", ca, caKey, false)
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Origin = "tls.test/ledger"
	cfg.Security.Banner = io.Discard
	cfg.Security.TLS = auth.TLSFiles{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile}
	cfg.Security.Auth.ClientCertificates = []auth.CertRule{{Match: "cn:ops", Roles: []auth.Role{auth.RoleAdmin}}}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	addr := n.GRPCAddr()
	tok, _ := os.ReadFile(filepath.Join(cfg.DataDir, node.AdminTokenFile))
	token := strings.TrimSpace(string(tok))

	r := runCtl("", "--addr", addr, "--ca", caFile, "--cert", opsCert, "--key-file", opsKey, "whoami")
	if r.code != 0 || !strings.Contains(r.stdout, `"cert:cn:ops"`) {
		t.Fatalf("whoami with a client certificate: %v", r)
	}
	if r := runCtl("", "--addr", addr, "--ca", caFile, "--token", token, "token", "list"); r.code != 0 {
		t.Fatalf("token over TLS: %v", r)
	}
	wantFailure(t, runCtl("", "--addr", addr, "--token", token, "token", "list"), ExitError, "Unavailable")
	wantFailure(t, runCtl("", "--addr", addr, "--tls", "--token", token, "token", "list"), ExitError, "Unavailable")
	wantFailure(t, runCtl("", "--addr", addr, "--ca", caFile, "--cert", opsCert, "whoami"), ExitError, "--cert and --key")
}
