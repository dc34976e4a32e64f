package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"

	"github.com/auditledger/ledgerd/ledger"
)

// FSM applies committed Raft log entries to a ledger.Store. It is
// deterministic: the Raft log index is the Store's batch number, so the
// last applied index is written in the same Pebble batch as the data and
// a replay after a restart (Raft re-applies everything after its last
// snapshot) is a no-op.
//
// A log entry that does not decode (checksum mismatch) stops the FSM for
// good: every later Apply fails with the same error instead of letting
// this node go on from a state that differs from the others'. The node
// reports it in its status and health; the operator replaces the node.
type FSM struct {
	store *ledger.Store
	log   *slog.Logger
	fatal atomic.Pointer[error]

	restores atomic.Int64 // snapshots that replaced the store's content
	// sinceSnapshot counts the log bytes applied since the last snapshot
	// (the node snapshots by size).
	sinceSnapshot atomic.Uint64
	// lastSnapshotSize is the size of the newest snapshot (its stream).
	lastSnapshotSize atomic.Uint64

	observers kvObservers // told of applied KV writes and restores (observe.go)
}

// NewFSM returns the state machine over store.
func NewFSM(store *ledger.Store, log *slog.Logger) *FSM {
	if log == nil {
		log = slog.Default()
	}
	return &FSM{store: store, log: log}
}

// applyResponse is what Apply returns through ApplyFuture.Response.
type applyResponse struct {
	results []ledger.Result
	err     error
}

// Apply implements hraft.FSM.
func (f *FSM) Apply(l *hraft.Log) any {
	if errp := f.fatal.Load(); errp != nil {
		return applyResponse{err: *errp}
	}
	f.sinceSnapshot.Add(uint64(len(l.Data)))
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		err = fmt.Errorf("%w: log entry %d: %v; this node stopped applying", ledger.ErrCorrupt, l.Index, err)
		f.fatal.CompareAndSwap(nil, &err)
		f.log.Error("raft: cannot apply log entry", "index", l.Index, "term", l.Term, "err", err)
		return applyResponse{err: err}
	}
	switch cmd.kind {
	case kindLeaves:
		res, err := f.store.Apply(l.Index, cmd.leaves)
		return applyResponse{results: res, err: err}
	default: // kindKV
		err := f.store.ApplyKV(l.Index, cmd.ops)
		if err == nil {
			f.observers.applied(cmd.ops)
		}
		return applyResponse{err: err}
	}
}

// Err returns the error that stopped the FSM, or nil.
func (f *FSM) Err() error {
	if errp := f.fatal.Load(); errp != nil {
		return *errp
	}
	return nil
}

// Snapshot implements hraft.FSM: a Pebble snapshot, streamed out later by
// Persist while Apply goes on.
func (f *FSM) Snapshot() (hraft.FSMSnapshot, error) {
	sn, err := f.store.Snapshot()
	if err != nil {
		return nil, err
	}
	f.sinceSnapshot.Store(0)
	return fsmSnapshot{sn, f}, nil
}

// Restore implements hraft.FSM. Raft calls it at start-up with its
// latest snapshot and on a follower that is sent one. The Store is
// persistent, so when it already holds the snapshot's state or a later
// one (the usual case at start-up) Restore only checks that the roots
// agree and keeps the data; otherwise it replaces the Store's content.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	counted := &countingReader{r: rc}
	br := bufio.NewReaderSize(counted, 1<<20)
	snap, err := ledger.SnapshotState(br)
	if err != nil {
		return err
	}
	local := f.store.State()
	if snap.LastApplied <= local.LastApplied {
		if snap.Size > local.Size {
			return fmt.Errorf("%w: snapshot has %d entries at batch %d, the store only %d at batch %d",
				ledger.ErrCorrupt, snap.Size, snap.LastApplied, local.Size, local.LastApplied)
		}
		root, err := f.store.RootAt(snap.Size)
		if err != nil {
			return err
		}
		if root != snap.Root {
			return fmt.Errorf("%w: snapshot root at size %d differs from the store's", ledger.ErrCorrupt, snap.Size)
		}
		f.log.Info("raft: store already holds the snapshot", "snapshot_applied", snap.LastApplied, "store_applied", local.LastApplied)
		return nil
	}
	f.log.Info("raft: restoring store from snapshot", "size", snap.Size, "applied", snap.LastApplied, "store_size", local.Size)
	defer f.observers.restored() // even a failed restore may have changed the store
	if err := f.store.Restore(br); err != nil {
		return fmt.Errorf("raft: restore snapshot: %w", err)
	}
	// The next snapshot of this node is due by this one's size, as if it
	// had taken it (a node that restored a large ledger and then
	// snapshotted after SnapshotBytes would copy it all again).
	f.lastSnapshotSize.Store(counted.n)
	f.restores.Add(1)
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

type fsmSnapshot struct {
	sn  *ledger.Snapshot
	fsm *FSM
}

// Persist implements hraft.FSMSnapshot.
func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	n, err := s.sn.WriteTo(sink)
	if err != nil {
		return errors.Join(err, sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return err
	}
	s.fsm.lastSnapshotSize.Store(uint64(n))
	return nil
}

// Release implements hraft.FSMSnapshot.
func (s fsmSnapshot) Release() { s.sn.Close() }
