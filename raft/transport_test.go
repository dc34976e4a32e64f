package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// testCA makes a CA and signs node certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

// issue writes name.pem and name-key.pem and returns the TLS files.
func (ca *testCA) issue(t *testing.T, name string) TLSFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := TLSFiles{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem"), CAFile: filepath.Join(ca.dir, "ca.pem")}
	writePEM(t, f.CertFile, "CERTIFICATE", der)
	writePEM(t, f.KeyFile, "EC PRIVATE KEY", kb)
	return f
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tcpNode(t *testing.T, id string, tlsConf *tls.Config) *Node {
	t.Helper()
	cfg := Config{ID: id, Dir: t.TempDir(), Store: openTestStore(t), RaftAddr: "127.0.0.1:0", TLS: tlsConf, Logger: testLogger()}
	fastConfig(&cfg)
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestMutualTLSTransport replicates over the TCP transport with mutual
// TLS, and checks that a peer with a certificate of another CA, or none,
// cannot even complete a handshake with the Raft listener.
func TestMutualTLSTransport(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	conf := func(name string) *tls.Config {
		c, err := ca.issue(t, name).Load()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	n1, n2 := tcpNode(t, "n1", conf("n1")), tcpNode(t, "n2", conf("n2"))
	if err := n1.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "n1 leads", n1.IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n1.addVoter(ctx, "n2", n2.RaftAddr(), ""); err != nil {
		t.Fatal(err)
	}
	if err := n1.Committer().CommitKV(ctx, []ledger.KV{{Key: []byte("f/tls"), Value: []byte("ok")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the write on n2", func() bool {
		v, err := n2.cfg.Store.Get([]byte("f/tls"))
		return err == nil && string(v) == "ok"
	})

	rogueDir := t.TempDir()
	rogue, err := newTestCA(t, rogueDir).issue(t, "rogue").Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*tls.Config{
		"certificate of another CA": {Certificates: rogue.Certificates, InsecureSkipVerify: true},
		"no certificate":            {InsecureSkipVerify: true},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n1.RaftAddr(), c)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate
			// arrives with the first read.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s: the Raft listener accepted the connection (%v)", name, err)
		}
	}
}

// TestOpenRefuses: bad configurations fail at Open with a clear error.
func TestOpenRefuses(t *testing.T) {
	st := openTestStore(t)
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no id":                  {Config{Dir: t.TempDir(), Store: st, RaftAddr: "127.0.0.1:0"}, "needs ID"},
		"no address":             {Config{ID: "n1", Dir: t.TempDir(), Store: st}, "RaftAddr"},
		"plaintext off loopback": {Config{ID: "n1", Dir: t.TempDir(), Store: st, RaftAddr: "0.0.0.0:0"}, "only allowed on loopback"},
		"unspecified advertise":  {Config{ID: "n1", Dir: t.TempDir(), Store: st, RaftAddr: "0.0.0.0:0", AllowPlaintext: true}, "advertise"},
		"unknown log store":      {Config{ID: "n1", Dir: t.TempDir(), Store: st, RaftAddr: "127.0.0.1:0", LogStore: "tape"}, "unknown log store"},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := Open(tc.cfg)
			if err == nil {
				n.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestMemberCertificates: the Cluster service takes a client certificate
// as proof of membership only when it chains to the cluster CA, even on
// an API listener that also trusts another client CA.
func TestMemberCertificates(t *testing.T) {
	cluster := newTestCA(t, t.TempDir())
	clients := newTestCA(t, t.TempDir())
	load := func(f TLSFiles) *tls.Config {
		c, err := f.Load()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	nodeConf := load(cluster.issue(t, "n1"))
	n := tcpNode(t, "n1", nodeConf)
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "n1 leads", n.IsLeader)

	// The API listener: the node's certificate, client certificates of
	// either CA accepted for the connection.
	srvConf := nodeConf.Clone()
	srvConf.ClientAuth = tls.VerifyClientCertIfGiven
	srvConf.ClientCAs = x509.NewCertPool()
	srvConf.ClientCAs.AddCert(cluster.cert)
	srvConf.ClientCAs.AddCert(clients.cert)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvConf)))
	NewService(n, ServiceOptions{}).Register(srv)
	go srv.Serve(lis)
	defer srv.Stop()

	remove := func(c *tls.Config) error {
		c = c.Clone()
		c.RootCAs = x509.NewCertPool()
		c.RootCAs.AddCert(cluster.cert)
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(c)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = pb.NewClusterClient(conn).Remove(ctx, &pb.ClusterRemoveRequest{NodeId: "nobody"})
		return fromStatus(err)
	}
	if err := remove(load(clients.issue(t, "api-client"))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("API client certificate: %v, want ErrUnauthenticated", err)
	}
	if err := remove(&tls.Config{}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no certificate: %v, want ErrUnauthenticated", err)
	}
	if err := remove(load(cluster.issue(t, "n2"))); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("member certificate: %v, want ErrUnknownNode (authorized)", err)
	}
}
