package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/auditledger/ledgerd/ledger"
)

// Sentinel errors of the cluster's membership operations. Write errors
// are the ledger's: ledger.ErrNotLeader while no leader can take the
// write (retry with the same event ids; apply is idempotent on them).
var (
	// ErrDuplicateNode reports a join whose node id (or Raft address) is
	// already a member under another address (or id).
	ErrDuplicateNode = errors.New("raft: node already a member")
	// ErrUnknownNode reports a remove of a node that is not a member.
	ErrUnknownNode = errors.New("raft: no such member")
	// ErrLastVoter reports a remove that would leave no voter.
	ErrLastVoter = errors.New("raft: cannot remove the last voter")
	// ErrNotCluster reports a join to an address that does not serve a
	// cluster, or to a node that has no leader (never bootstrapped).
	ErrNotCluster = errors.New("raft: not a cluster member")
	// ErrUnauthenticated reports a cluster-internal call from a caller
	// that is not a member (no token, no client certificate).
	ErrUnauthenticated = errors.New("raft: caller is not authenticated as a cluster member")
)

// retryable wraps the hashicorp/raft errors that mean "this node cannot
// commit right now, another may": the outcome of the write is unknown
// (ErrLeadershipLost, #561) or it never started. Retrying with the same
// event ids is safe.
func retryable(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader),
		errors.Is(err, hraft.ErrLeadershipLost),
		errors.Is(err, hraft.ErrLeadershipTransferInProgress),
		errors.Is(err, hraft.ErrAbortedByRestore),
		errors.Is(err, hraft.ErrEnqueueTimeout),
		errors.Is(err, hraft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v (retry with the same event ids)", ledger.ErrNotLeader, err)
	}
	return err
}

// The cluster RPCs carry the sentinel's name in an ErrorInfo detail, so
// the caller gets the same sentinel back (never by parsing messages).
var errorCodes = []struct {
	err  error
	name string
	code codes.Code
}{
	{ledger.ErrInvalid, "INVALID", codes.InvalidArgument},
	{ledger.ErrNotFound, "NOT_FOUND", codes.NotFound},
	{ledger.ErrTooLarge, "TOO_LARGE", codes.ResourceExhausted},
	{ledger.ErrPushback, "PUSHBACK", codes.ResourceExhausted},
	{ledger.ErrNotLeader, "NOT_LEADER", codes.Unavailable},
	{ledger.ErrClosed, "CLOSED", codes.Unavailable},
	{ledger.ErrCorrupt, "CORRUPT", codes.DataLoss},
	{ErrDuplicateNode, "DUPLICATE_NODE", codes.AlreadyExists},
	{ErrUnknownNode, "UNKNOWN_NODE", codes.NotFound},
	{ErrLastVoter, "LAST_VOTER", codes.FailedPrecondition},
	{ErrNotCluster, "NOT_CLUSTER", codes.FailedPrecondition},
	{ErrUnauthenticated, "UNAUTHENTICATED", codes.PermissionDenied},
	{context.DeadlineExceeded, "DEADLINE", codes.DeadlineExceeded},
	{context.Canceled, "CANCELED", codes.Canceled},
}

const errorDomain = "raft.ledgerd"

// statusError turns an error into a gRPC status for the cluster RPCs.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range errorCodes {
		if errors.Is(err, m.err) {
			s, derr := status.New(m.code, err.Error()).WithDetails(&errdetails.ErrorInfo{Reason: m.name, Domain: errorDomain})
			if derr != nil {
				return status.Error(m.code, err.Error())
			}
			return s.Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus turns a cluster RPC's error back into the sentinel it
// stands for, keeping the remote message. A server that does not serve
// the Cluster service is ErrNotCluster; one that cannot be reached is
// ledger.ErrNotLeader (retryable: it may be down during a failover).
func fromStatus(err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			for _, m := range errorCodes {
				if m.name == info.Reason {
					return &remoteError{sentinel: m.err, msg: s.Message()}
				}
			}
		}
	}
	switch s.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("%w: the server does not serve the cluster service (remote: %s)", ErrNotCluster, s.Message())
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ledger.ErrNotLeader, s.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w (remote: %s)", context.DeadlineExceeded, s.Message())
	case codes.Canceled:
		return fmt.Errorf("%w (remote: %s)", context.Canceled, s.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%w (remote: %s)", ErrUnauthenticated, s.Message())
	}
	return err
}

// remoteError is a sentinel error that came back from another node: it
// reads as the remote message and matches the sentinel with errors.Is.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// unavailable is a write that found no leader to take it: it matches
// ledger.ErrNotLeader and, as a gRPC status (the API passes statuses
// through), is Unavailable with a RetryInfo detail saying when a retry
// may find a leader (an election's time), besides the NOT_LEADER
// ErrorInfo of the cluster RPCs.
type unavailable struct {
	err   error
	retry time.Duration
}

func (e *unavailable) Error() string { return e.err.Error() }
func (e *unavailable) Unwrap() error { return e.err }

// GRPCStatus implements the interface status.FromError looks for.
func (e *unavailable) GRPCStatus() *status.Status {
	s := status.New(codes.Unavailable, e.Error())
	if d, err := s.WithDetails(
		&errdetails.ErrorInfo{Reason: "NOT_LEADER", Domain: errorDomain},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(e.retry)},
	); err == nil {
		return d
	}
	return s
}
