package raft

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/api/wire"
)

// TokenHeader is the gRPC metadata key carrying the cluster token;
// NodeHeader names the calling node (for logs and fault injection).
const (
	TokenHeader = "ledgerd-cluster-token"
	NodeHeader  = "ledgerd-node-id"
)

// maxMessage admits a full batch (16 MiB of leaves) with framing.
const maxMessage = 24 << 20

// peers keeps one gRPC connection per other node's API address.
type peers struct {
	tlsConf    *tls.Config
	allowPlain bool
	token      string
	self       string

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeers(self string, tlsConf *tls.Config, allowPlain bool, token string) *peers {
	return &peers{self: self, tlsConf: tlsConf, allowPlain: allowPlain, token: token, conns: make(map[string]*grpc.ClientConn)}
}

// DialOptions returns the gRPC options to reach a node's API at addr:
// TLS (with this node's client certificate) when tlsConf is set, plain
// only on loopback or when allowed.
func DialOptions(addr string, tlsConf *tls.Config, allowPlain bool) ([]grpc.DialOption, error) {
	var creds credentials.TransportCredentials
	switch {
	case tlsConf != nil:
		c := tlsConf.Clone()
		c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
		creds = credentials.NewTLS(c)
	case allowPlain || IsLoopback(addr):
		creds = insecure.NewCredentials()
	default:
		return nil, fmt.Errorf("raft: refusing plaintext gRPC to %s off loopback; give TLS certificates", addr)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage), grpc.ForceCodecV2(wire.Client())),
	}, nil
}

func (p *peers) client(addr string) (pb.ClusterClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, fmt.Errorf("raft: node closed")
	}
	if cc, ok := p.conns[addr]; ok {
		return pb.NewClusterClient(cc), nil
	}
	opts, err := DialOptions(addr, p.tlsConf, p.allowPlain)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("raft: dial %s: %w", addr, err)
	}
	p.conns[addr] = cc
	return pb.NewClusterClient(cc), nil
}

// outgoing adds the cluster token and this node's id to ctx.
func (p *peers) outgoing(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(WithToken(ctx, p.token), NodeHeader, p.self)
}

// WithToken adds the cluster token to an outgoing gRPC context.
func WithToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, TokenHeader, token)
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		cc.Close()
	}
	p.conns = nil
}
