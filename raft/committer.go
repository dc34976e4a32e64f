package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// Committer returns the ledger.Committer of this node: on the leader it
// proposes each batch as ONE Raft log entry and returns what the FSM
// applied; on a follower it forwards the sealed leaves to the leader,
// which commits them as they are. While no leader can take the write
// (an election, a partition) it waits up to Config.ApplyTimeout and then
// fails with ledger.ErrNotLeader; the caller retries with the same event
// ids, which apply only once.
func (n *Node) Committer() ledger.Committer { return committer{n} }

type committer struct{ n *Node }

// Commit implements ledger.Committer.
func (c committer) Commit(ctx context.Context, leaves [][]byte) ([]ledger.Result, error) {
	var cmd []byte // encoded once, on the first attempt that needs it
	return c.n.commit(ctx, func(ctx context.Context) ([]ledger.Result, error) {
		if c.n.IsLeader() {
			if cmd == nil {
				cmd = encodeLeaves(leaves)
			}
			return c.n.apply(ctx, cmd)
		}
		return c.n.forward(ctx, leaves)
	}, leaves, false)
}

// CommitAsync implements ledger.AsyncCommitter. On the leader it hands
// the entry to Raft at once, in call order, and waits for it in wait, so
// the ledger prepares its next batch while this one replicates and
// syncs. On a follower it starts the forward and wait waits for it, so
// that the follower's ledger keeps as many batches in flight to the
// leader as it would keep in Raft (batches in flight together carry
// different events; the leader orders them as they arrive).
func (c committer) CommitAsync(ctx context.Context, leaves [][]byte) (func() ([]ledger.Result, error), error) {
	if !c.n.IsLeader() {
		type answer struct {
			res []ledger.Result
			err error
		}
		done := make(chan answer, 1)
		go func() { // ends with the forward, bounded by ApplyTimeout
			res, err := c.Commit(ctx, leaves)
			done <- answer{res, err}
		}()
		return func() ([]ledger.Result, error) { a := <-done; return a.res, a.err }, nil
	}
	f := c.n.raft.Apply(encodeLeaves(leaves), c.n.cfg.ApplyTimeout)
	return func() ([]ledger.Result, error) {
		res, err := applyResult(f)
		if !errors.Is(err, ledger.ErrNotLeader) {
			return res, err
		}
		// Leadership moved while the entry was in flight: the outcome is
		// unknown, so go through the retry loop (it forwards to the new
		// leader; ids make a second commit a no-op).
		if c.n.metrics != nil {
			c.n.metrics.retries.Inc()
		}
		return c.n.commit(ctx, func(ctx context.Context) ([]ledger.Result, error) {
			if c.n.IsLeader() {
				return c.n.apply(ctx, encodeLeaves(leaves))
			}
			return c.n.forward(ctx, leaves)
		}, leaves, true)
	}, nil
}

// CommitKV implements ledger.Committer.
func (c committer) CommitKV(ctx context.Context, ops []ledger.KV) error {
	_, err := c.n.commit(ctx, func(ctx context.Context) ([]ledger.Result, error) {
		if c.n.IsLeader() {
			return c.n.apply(ctx, encodeKV(ops))
		}
		return nil, c.n.forwardKV(ctx, ops)
	}, nil, false)
	return err
}

// commit runs attempt until it succeeds, fails for good, or
// ApplyTimeout (or ctx) runs out. Only ledger.ErrNotLeader is retried:
// no leader, leadership lost mid-write, a leader that cannot be reached.
//
// retried says an earlier attempt may have committed the batch already.
func (n *Node) commit(ctx context.Context, attempt func(context.Context) ([]ledger.Result, error), leaves [][]byte, retried bool) ([]ledger.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	giveUp := func(err error) error {
		if errors.Is(err, ledger.ErrNotLeader) {
			return n.unavailable(fmt.Errorf("%w (gave up after %v; retry with the same event ids: they apply once)", err, n.cfg.ApplyTimeout))
		}
		return err
	}
	for try := 0; ; try++ {
		res, err := attempt(ctx)
		if err == nil {
			if try > 0 || retried {
				ownRetries(leaves, res)
			}
			return res, nil
		}
		if !errors.Is(err, ledger.ErrNotLeader) || ctx.Err() != nil {
			return nil, giveUp(err)
		}
		select {
		case <-n.stopping: // shutting down: no waiting for a leader
			return nil, n.unavailable(fmt.Errorf("%w (this node is stopping; retry with the same event ids: they apply once)", err))
		default:
		}
		if n.metrics != nil {
			n.metrics.retries.Inc()
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, giveUp(err)
		case <-n.stopping:
			t.Stop()
			return nil, giveUp(err)
		}
		backoff = min(2*backoff, 200*time.Millisecond)
		if _, werr := n.WaitLeader(ctx); werr != nil {
			return nil, giveUp(err)
		}
	}
}

// unavailable adds the retry hint to a write that found no leader: an
// election's time (the election timeout, at least 100ms).
func (n *Node) unavailable(err error) error {
	retry := max(n.raft.ReloadableConfig().ElectionTimeout, 100*time.Millisecond)
	return &unavailable{err: err, retry: retry}
}

// ownRetries clears Duplicate on results that are this very batch
// committed by an earlier attempt whose answer was lost (the stored leaf
// is byte for byte the one sent: same id, same stamp, same signature). A
// client that appends an id twice sends two differently stamped leaves,
// so it still sees Duplicate; so does the second copy of an id repeated
// within the batch.
func ownRetries(leaves [][]byte, res []ledger.Result) {
	if leaves == nil {
		return
	}
	seen := make(map[uint64]bool, len(res))
	for i := range res {
		r := &res[i]
		if r.Duplicate && !seen[r.Index] && bytes.Equal(r.Leaf, leaves[i]) {
			r.Duplicate = false
		}
		seen[r.Index] = true
	}
}

// apply proposes one command on the leader and returns the FSM's answer.
func (n *Node) apply(ctx context.Context, cmd []byte) ([]ledger.Result, error) {
	return applyResult(n.raft.Apply(cmd, remaining(ctx, n.cfg.ApplyTimeout)))
}

// applyResult waits for an Apply and returns the FSM's answer.
func applyResult(f hraft.ApplyFuture) ([]ledger.Result, error) {
	if err := f.Error(); err != nil {
		return nil, retryable(err)
	}
	resp, ok := f.Response().(applyResponse)
	if !ok {
		return nil, fmt.Errorf("%w: FSM answered %T", ledger.ErrCorrupt, f.Response())
	}
	return resp.results, resp.err
}

// forward sends sealed leaves to the leader's Forward RPC.
func (n *Node) forward(ctx context.Context, leaves [][]byte) ([]ledger.Result, error) {
	_, api, err := n.leaderAPI()
	if err != nil {
		return nil, err
	}
	cl, err := n.peers.client(api)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Forward(n.peers.outgoing(ctx), &pb.ClusterForwardRequest{Leaves: leaves})
	if err != nil {
		return nil, fromStatus(err)
	}
	if n.metrics != nil {
		n.metrics.forwarded.Inc()
	}
	if len(resp.Results) != len(leaves) {
		return nil, fmt.Errorf("%w: leader returned %d results for %d leaves", ledger.ErrCorrupt, len(resp.Results), len(leaves))
	}
	out := make([]ledger.Result, len(leaves))
	var size uint64 // the tree size that holds every result
	for i, r := range resp.Results {
		size = max(size, r.Index+1)
		if len(r.LeafHash) != merkle.HashSize {
			return nil, fmt.Errorf("%w: leader returned a %d-byte leaf hash", ledger.ErrCorrupt, len(r.LeafHash))
		}
		leaf := leaves[i]
		if r.Duplicate && r.Leaf != nil {
			leaf = r.Leaf
		}
		out[i] = ledger.Result{Index: r.Index, ID: r.Id, LeafHash: merkle.Hash(r.LeafHash), Leaf: leaf, Duplicate: r.Duplicate}
	}
	n.waitApplied(ctx, size)
	return out, nil
}

// waitApplied waits until this node's store holds size entries: a
// follower answers a forwarded write once it can serve it (read your
// writes: an entry read or a proof asked of this node right after the
// append finds it). The leader has committed the batch already, so
// giving up (ctx, shutdown) still answers with its results.
func (n *Node) waitApplied(ctx context.Context, size uint64) {
	for {
		changed := n.cfg.Store.Changed()
		if n.cfg.Store.State().Size >= size {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			n.log.Debug("raft: answered a forwarded write before applying it", "size", size, "err", ctx.Err())
			return
		case <-n.stop:
			return
		}
	}
}

func (n *Node) forwardKV(ctx context.Context, ops []ledger.KV) error {
	_, api, err := n.leaderAPI()
	if err != nil {
		return err
	}
	cl, err := n.peers.client(api)
	if err != nil {
		return err
	}
	req := &pb.ClusterForwardKVRequest{Ops: make([]*pb.ClusterKV, len(ops))}
	for i, op := range ops {
		req.Ops[i] = &pb.ClusterKV{Key: op.Key, Value: op.Value, Delete: op.Delete}
	}
	if _, err := cl.ForwardKV(n.peers.outgoing(ctx), req); err != nil {
		return fromStatus(err)
	}
	return nil
}

// ReadBarrier returns once this node has applied every entry committed
// before the call: on the leader after a Raft barrier, on a follower
// after catching up with the applied index the leader reports after its
// own barrier. Reads after it are linearizable.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if n.IsLeader() {
		return retryable(n.raft.Barrier(remaining(ctx, n.cfg.ApplyTimeout)).Error())
	}
	_, api, err := n.leaderAPI()
	if err != nil {
		return err
	}
	cl, err := n.peers.client(api)
	if err != nil {
		return err
	}
	st, err := cl.NodeStatus(n.peers.outgoing(ctx), &pb.ClusterNodeStatusRequest{ReadBarrier: true})
	if err != nil {
		return fromStatus(err)
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for n.raft.AppliedIndex() < st.AppliedIndex {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// LinearizableCheckpoint returns a function for api.LedgerOptions: the
// freshest checkpoint, after a read barrier.
func (n *Node) LinearizableCheckpoint(l *ledger.Ledger) func(context.Context) (*ledger.Checkpoint, error) {
	return func(ctx context.Context) (*ledger.Checkpoint, error) {
		if err := n.ReadBarrier(ctx); err != nil {
			return nil, err
		}
		return l.WaitCheckpoint(ctx, n.cfg.Store.State().Size)
	}
}
