package raft

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// ServiceOptions configure the Cluster gRPC service of a node.
type ServiceOptions struct {
	// Ledger is the node's write path: forwarded leaves are committed
	// through it, in the leader's group commit.
	Ledger *ledger.Ledger
	// JoinKeys returns the cluster keys handed to a joining node (by
	// name: checkpoint signer key, HMAC keys, ...). Nil: joins get none
	// and the operator gives every node the same key files.
	JoinKeys func() (map[string][]byte, error)
}

// Service is the Cluster gRPC service: forwarding, join, remove and
// status. Register it on the node's API server.
type Service struct {
	pb.UnimplementedClusterServer
	n *Node
	o ServiceOptions
}

// NewService returns the service of node n.
func NewService(n *Node, o ServiceOptions) *Service { return &Service{n: n, o: o} }

// Register adds the service to g.
func (s *Service) Register(g grpc.ServiceRegistrar) { pb.RegisterClusterServer(g, s) }

// authorize admits a cluster-internal call: the cluster token when one
// is configured, a TLS client certificate verified against the cluster
// CA, or, when no token is configured and the API listens on loopback
// only (so every caller is on this machine), a loopback peer.
func (s *Service) authorize(ctx context.Context) error {
	tok := s.n.cfg.Token
	if tok != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get(TokenHeader) {
			if subtle.ConstantTimeCompare([]byte(v), []byte(tok)) == 1 {
				return nil
			}
		}
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return statusError(ErrUnauthenticated)
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && s.memberCertificate(ti.State.PeerCertificates) {
		return nil
	}
	if tok == "" && isLoopbackAddr(p.Addr) && IsLoopback(s.n.cfg.APIAddr) {
		return nil
	}
	return statusError(fmt.Errorf("%w: give the cluster token or a client certificate signed by the cluster CA", ErrUnauthenticated))
}

// memberCertificate reports whether the peer's certificate chains to
// the cluster CA (Config.TLS). The API listener may trust other client
// CAs too (API clients with certificates); their certificates verify
// for the connection but do not make the caller a cluster member.
func (s *Service) memberCertificate(chain []*x509.Certificate) bool {
	tc := s.n.cfg.TLS
	if tc == nil || len(chain) == 0 {
		return false
	}
	roots := tc.ClientCAs
	if roots == nil {
		roots = tc.RootCAs
	}
	if roots == nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// private reports whether the connection is safe for key material:
// TLS, or loopback.
func private(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	if _, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return true
	}
	return isLoopbackAddr(p.Addr)
}

func isLoopbackAddr(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return a != nil && IsLoopback(a.String())
}

// leaderClient returns a client for the leader, for calls a follower
// passes on. During an election it waits (up to ctx, at most
// ApplyTimeout) for the next leader; when that turns out to be this node
// (a node just bootstrapped wins its first election) it returns a nil
// client and the caller serves the call itself.
func (s *Service) leaderClient(ctx context.Context) (pb.ClusterClient, error) {
	ctx, cancel := context.WithTimeout(ctx, s.n.cfg.ApplyTimeout)
	defer cancel()
	for {
		if s.n.IsLeader() {
			return nil, nil
		}
		_, api, err := s.n.leaderAPI()
		if err == nil {
			return s.n.peers.client(api)
		}
		if !errors.Is(err, ledger.ErrNotLeader) {
			return nil, err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// Forward commits leaves sealed by a follower (leader only).
func (s *Service) Forward(ctx context.Context, req *pb.ClusterForwardRequest) (*pb.ClusterForwardResponse, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	if s.o.Ledger == nil {
		return nil, statusError(fmt.Errorf("%w: node is starting", ledger.ErrNotLeader))
	}
	if !s.n.IsLeader() {
		return nil, statusError(fmt.Errorf("%w: %s is not the leader (leader: %q)", ledger.ErrNotLeader, s.n.cfg.ID, s.n.Leader()))
	}
	if len(req.Leaves) == 0 || len(req.Leaves) > ledger.MaxBatchEvents {
		return nil, statusError(fmt.Errorf("%w: %d leaves in a forwarded batch", ledger.ErrInvalid, len(req.Leaves)))
	}
	// The leader's group commit merges these leaves with other callers'
	// into one Store batch, which a malformed leaf would fail as a whole:
	// check them here, where only this caller is refused.
	total := 0
	for i, l := range req.Leaves {
		total += len(l)
		if id, err := ledger.LeafID(l); err != nil || id == "" {
			return nil, statusError(fmt.Errorf("%w: forwarded leaf %d is malformed or has no id", ledger.ErrInvalid, i))
		}
	}
	if total > ledger.MaxBatchBytes {
		return nil, statusError(fmt.Errorf("%w: forwarded batch of %d bytes", ledger.ErrTooLarge, total))
	}
	results, err := s.o.Ledger.CommitLeaves(ctx, req.Leaves, total)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &pb.ClusterForwardResponse{Results: make([]*pb.ClusterForwardResult, len(results))}
	for i, r := range results {
		fr := &pb.ClusterForwardResult{Index: r.Index, Id: r.ID, LeafHash: r.LeafHash[:], Duplicate: r.Duplicate}
		if r.Duplicate {
			fr.Leaf = r.Leaf
		}
		resp.Results[i] = fr
	}
	return resp, nil
}

// ForwardKV commits reserved-table writes of a follower (leader only).
func (s *Service) ForwardKV(ctx context.Context, req *pb.ClusterForwardKVRequest) (*pb.ClusterForwardKVResponse, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	if !s.n.IsLeader() {
		return nil, statusError(fmt.Errorf("%w: %s is not the leader", ledger.ErrNotLeader, s.n.cfg.ID))
	}
	ops := make([]ledger.KV, len(req.Ops))
	for i, op := range req.Ops {
		ops[i] = ledger.KV{Key: op.Key, Value: op.Value, Delete: op.Delete}
	}
	if err := s.n.apply1KV(ctx, ops); err != nil {
		return nil, statusError(err)
	}
	return &pb.ClusterForwardKVResponse{}, nil
}

// apply1KV proposes KV ops on the leader, without forwarding.
func (n *Node) apply1KV(ctx context.Context, ops []ledger.KV) error {
	_, err := n.apply(ctx, encodeKV(ops))
	return err
}

// Join adds the caller as a voter and hands it the cluster keys. Any
// member accepts it; a follower passes it to the leader.
func (s *Service) Join(ctx context.Context, req *pb.ClusterJoinRequest) (*pb.ClusterJoinResponse, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	if !private(ctx) {
		return nil, statusError(fmt.Errorf("%w: refusing to send cluster keys over plaintext off loopback; use TLS", ErrUnauthenticated))
	}
	if !s.n.IsLeader() {
		if s.n.Leader() == "" {
			servers, err := s.n.configuration()
			if err == nil && len(servers) == 0 {
				return nil, statusError(fmt.Errorf("%w: node %s was never bootstrapped nor joined to a cluster", ErrNotCluster, s.n.cfg.ID))
			}
		}
		// A node just bootstrapped has no leader until it wins its first
		// election, and then the leader is this node: wait for either.
		cl, err := s.leaderClient(ctx)
		if err != nil {
			return nil, statusError(err)
		}
		if cl != nil {
			resp, err := cl.Join(s.n.peers.outgoing(ctx), req)
			if err != nil {
				return nil, err // already a status from the leader
			}
			return resp, nil
		}
	}
	if err := s.n.addVoter(ctx, req.NodeId, req.RaftAddr, req.ApiAddr); err != nil {
		return nil, statusError(err)
	}
	resp := &pb.ClusterJoinResponse{LeaderId: s.n.cfg.ID}
	if s.o.JoinKeys != nil {
		keys, err := s.o.JoinKeys()
		if err != nil {
			return nil, statusError(err)
		}
		resp.Keys = keys
	}
	return resp, nil
}

// Remove takes a node out of the cluster. Any member accepts it; a
// follower passes it to the leader.
func (s *Service) Remove(ctx context.Context, req *pb.ClusterRemoveRequest) (*pb.ClusterRemoveResponse, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	if req.NodeId == "" {
		return nil, statusError(fmt.Errorf("%w: node id is required", ledger.ErrInvalid))
	}
	if !s.n.IsLeader() {
		cl, err := s.leaderClient(ctx)
		if err != nil {
			return nil, statusError(err)
		}
		if cl != nil {
			return cl.Remove(s.n.peers.outgoing(ctx), req)
		}
	}
	if err := s.n.removeServer(ctx, req.NodeId); err != nil {
		return nil, statusError(err)
	}
	return &pb.ClusterRemoveResponse{}, nil
}

// Status reports every member, as seen from this node.
func (s *Service) Status(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	resp, err := s.n.ClusterStatus(ctx)
	return resp, statusError(err)
}

// NodeStatus reports this node.
func (s *Service) NodeStatus(ctx context.Context, req *pb.ClusterNodeStatusRequest) (*pb.ClusterNodeStatus, error) {
	if req.ReadBarrier {
		if !s.n.IsLeader() {
			return nil, statusError(fmt.Errorf("%w: %s is not the leader", ledger.ErrNotLeader, s.n.cfg.ID))
		}
		if err := s.n.ReadBarrier(ctx); err != nil {
			return nil, statusError(err)
		}
	}
	return s.n.LocalStatus(req.RootAtSize), nil
}

// Join asks the cluster member serving the API at addr to add this node
// as a voter, and returns the cluster keys it hands back. Raft must be
// running (Open) so that the leader can replicate to it. It retries
// while the cluster has no leader, until ctx ends; a duplicate node id,
// a non-cluster address or a refused token fail at once.
func (n *Node) Join(ctx context.Context, addr string) (map[string][]byte, error) {
	cl, err := n.peers.client(addr)
	if err != nil {
		return nil, err
	}
	req := &pb.ClusterJoinRequest{NodeId: n.cfg.ID, RaftAddr: n.RaftAddr(), ApiAddr: n.cfg.APIAddr}
	backoff := 20 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		resp, err := cl.Join(n.peers.outgoing(cctx), req)
		cancel()
		if err == nil {
			n.log.Info("raft: joined the cluster", "via", addr, "leader", resp.LeaderId)
			return resp.Keys, nil
		}
		err = fromStatus(err)
		// An attempt that ran out of its own time (the member was busy
		// electing its first leader, or not serving yet) is retried while
		// the caller's ctx lasts.
		attemptTimedOut := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if !errors.Is(err, ledger.ErrNotLeader) && !attemptTimedOut {
			return nil, fmt.Errorf("raft: join via %s: %w", addr, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("raft: join via %s: %w (last error: %v)", addr, ctx.Err(), err)
		}
		backoff = min(2*backoff, time.Second)
	}
}
