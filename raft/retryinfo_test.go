package raft

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auditledger/ledgerd/ledger"
)

// TestNoLeaderIsUnavailableWithRetryInfo: a write that finds no leader
// fails with ledger.ErrNotLeader, and as a gRPC status (what the API
// answers) with Unavailable and a RetryInfo detail.
func TestNoLeaderIsUnavailableWithRetryInfo(t *testing.T) {
	c := &testCluster{t: t, keys: newClusterKeys(t), base: t.TempDir()}
	t.Cleanup(c.close)
	tn := c.add("n1") // never bootstrapped: no leader, ever
	for _, stopping := range []bool{false, true} {
		if stopping {
			tn.node.Stopping()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := tn.node.Committer().Commit(ctx, [][]byte{[]byte("leaf")})
		cancel()
		if !errors.Is(err, ledger.ErrNotLeader) {
			t.Fatalf("stopping=%v: %v, want ErrNotLeader", stopping, err)
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.Unavailable {
			t.Fatalf("stopping=%v: status %v (ok %v), want Unavailable", stopping, st, ok)
		}
		var hint *errdetails.RetryInfo
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				hint = ri
			}
		}
		if hint == nil || hint.RetryDelay.AsDuration() <= 0 {
			t.Fatalf("stopping=%v: details %v, want a RetryInfo with a delay", stopping, st.Details())
		}
		if got := fromStatus(st.Err()); !errors.Is(got, ledger.ErrNotLeader) {
			t.Fatalf("stopping=%v: the status reads back as %v", stopping, got)
		}
	}
}
