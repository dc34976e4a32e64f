// Package raft replicates the ledger across a cluster with
// hashicorp/raft (imported as hraft): the FSM that applies batches to a
// ledger.Store, the log store (hashicorp/raft-wal, fsynced), snapshots
// (a consistent Pebble snapshot streamed out; Restore replaces the
// store atomically), the TCP transport with optional mutual TLS,
// membership (bootstrap, join, remove), forwarding of writes from
// followers to the leader, cluster status and the divergence alarm.
//
// One Raft log entry carries one ledger batch: leaves the leader (or
// the follower that forwarded them) already validated, stamped and
// signed. The FSM applies it with ledger.Store.Apply using the Raft
// index as the batch number, which the Store writes in the same Pebble
// batch as the data: a replay after a restart is a no-op, and every node
// applying the same log holds the same bytes and roots.
//
// Durability: the Raft log fsyncs every append before the leader counts
// it, so an acknowledged write is on disk on a majority. The Store may
// therefore be opened with NoSync (see Config.Store): what a crash of
// the machine loses from Pebble's unsynced tail, Raft re-applies from
// its log or, past a compaction, from its snapshot (FSM.Restore
// replaces the store when the snapshot is newer than it).
//
// Use, in order:
//
//  1. Open the ledger.Store, then Open a Node with it (this starts Raft
//     and the transport; nothing is bootstrapped yet).
//  2. On the first node of a new cluster call Bootstrap (a no-op when
//     the node has state). On a new node joining a cluster call Join
//     with any member's API address: the leader adds the node as a voter
//     and hands back the cluster keys. A restarted node does neither.
//  3. Build the ledger.Ledger with Committer() as its committer and the
//     cluster keys, create the Service with it and register the Service
//     on the node's gRPC server.
//  4. To stop: stop the gRPC server, call Stopping, Close the Ledger,
//     Close the Node, then close the Store.
//
// Writes on a follower are forwarded to the leader's Cluster.Forward
// RPC (the leader's API address is in a replicated membership table),
// several batches in flight, and answered once the follower itself has
// applied them, so a read on that follower right after the append finds
// the entry (read your writes; the leader does not wait for followers'
// apply). While no leader can take a write, the committer waits up to
// Config.ApplyTimeout and then fails with ledger.ErrNotLeader (gRPC
// Unavailable with a RetryInfo hint); a retry with the same event ids is
// exactly-once because apply is idempotent on ids. Once the process
// begins to stop (Node.Stopping), a write that finds no leader fails at
// once, so that a node without quorum still stops promptly.
//
// Snapshots are taken by applied log bytes, not entries (an entry is a
// whole batch, so a count of entries says little about the log's size):
// once as many bytes were applied as the last snapshot held, and at least
// Config.SnapshotBytes, so that a snapshot, a full copy of the store,
// costs at most about a byte written per byte of log however large the
// ledger grows.
//
// Reads are served by every node from its applied state; ReadBarrier and
// LinearizableCheckpoint give the freshest state when a caller needs it.
//
// All methods of Node and Service are safe for concurrent use.
package raft
