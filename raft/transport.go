package raft

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// TLSFiles name the PEM files of a node's certificate, its key and the
// cluster CA. The same files serve the Raft transport (mutual TLS: every
// node presents its certificate and checks its peer's against the CA)
// and the node-to-node gRPC calls.
type TLSFiles struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Enabled reports whether any file is set.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Load reads the files into a tls.Config usable on both ends of a
// connection: it presents the certificate, requires and verifies the
// peer's certificate against the CA (as a server), and verifies the
// server against the CA (as a client).
func (f TLSFiles) Load() (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" || f.CAFile == "" {
		return nil, errors.New("raft: TLS needs a certificate, its key and the CA certificate")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("raft: TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("raft: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("raft: TLS CA file %s holds no certificate", f.CAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// IsLoopback reports whether addr (host:port) names a loopback address.
// Plain TCP is only used there unless explicitly allowed.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// streamLayer is hashicorp/raft's StreamLayer over TCP, with TLS when
// tlsConf is set. Close also closes the connections it accepted:
// hashicorp/raft's NetworkTransport leaves their handlers blocked in a
// read until the peer hangs up.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	tlsConf   *tls.Config

	mu       sync.Mutex
	accepted map[net.Conn]struct{}
	closed   bool
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.accepted[c] = struct{}{}
	return &trackedConn{Conn: c, s: s}, nil
}

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.accepted {
		c.Close()
	}
	clear(s.accepted)
	return err
}

type trackedConn struct {
	net.Conn
	s *streamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.accepted, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func newStreamLayer(bind, advertise string, tlsConf *tls.Config) (*streamLayer, error) {
	lis, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft: listen on %s: %w", bind, err)
	}
	adv := lis.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			lis.Close()
			return nil, fmt.Errorf("raft: advertise address %q: %w", advertise, err)
		}
	}
	if ta, ok := adv.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		lis.Close()
		return nil, fmt.Errorf("raft: %s is not an address other nodes can dial; set the advertise address", adv)
	}
	if tlsConf != nil {
		lis = tls.NewListener(lis, tlsConf)
	}
	return &streamLayer{Listener: lis, advertise: adv, tlsConf: tlsConf, accepted: make(map[net.Conn]struct{})}, nil
}

// Dial implements hraft.StreamLayer.
func (s *streamLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if s.tlsConf == nil {
		return nd.Dial("tcp", string(addr))
	}
	conf := s.tlsConf.Clone()
	if host, _, err := net.SplitHostPort(string(addr)); err == nil {
		conf.ServerName = host
	}
	d := &tls.Dialer{NetDialer: nd, Config: conf}
	return d.Dial("tcp", string(addr))
}

// Addr implements net.Listener: the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
