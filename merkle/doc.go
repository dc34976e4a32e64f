// Package merkle is the Merkle tree of the ledger: RFC 6962 / RFC 9162
// hashing, a compact range (frontier) that appends leaves and yields roots,
// inclusion and consistency proofs computed in two steps (which stored nodes
// to fetch, then assembling the proof), their verification, and the C2SP
// tlog-tiles layout (tile height 8) for storing and serving node hashes.
//
// It owns the tree's math and nothing else: it is pure, uses only the
// standard library, and does no I/O. The ledger, the CLI, the Go client and
// auditors all use it, so that every party computes the same roots and
// proofs.
//
// Hashing (RFC 6962 §2.1, RFC 9162 §2.1.1), all SHA-256:
//
//	LeafHash(d)    = SHA-256(0x00 || d)
//	NodeHash(l, r) = SHA-256(0x01 || l || r)
//	EmptyRoot()    = SHA-256("")
//
// A node is named by NodeID{Level, Index}: level 0 are the leaves and node
// (L, i) covers leaves [i<<L, (i+1)<<L). Only full (perfect) subtrees have
// stored hashes. The tree of size n is the RFC 6962 tree: its right edge
// holds "ephemeral" nodes, roots of non-full subtrees, which are never stored
// and are rebuilt from the full nodes under them.
//
// # How a storage layer uses it
//
//  1. Keep one Range per log. For each new entry, Append(LeafHash(entry),
//     visit): visit receives the leaf and every node that the append
//     completes, bottom-up. Store those hashes by NodeID, or, with tiles,
//     store only the nodes whose level is a multiple of 8 (the rows of the
//     tiles, see TileForNode) and drop the rest.
//  2. After a batch, persist Range.Size() and Range.Hashes() next to the
//     checkpoint you sign over Range.Root(); on restart rebuild the frontier
//     with RestoreRange(size, hashes) and compare its Root() with the last
//     signed root.
//  3. To serve the root of an old size n, fetch the hashes of RangeNodes(n)
//     and call RootFromNodes(n, hashes).
//  4. To serve a proof, call InclusionNodes(index, size) or
//     ConsistencyNodes(size1, size2). Every ID in Nodes.IDs is a full node
//     that exists in the tree of that size.
//  5. Fetch each ID's hash: directly by NodeID, or with tiles via
//     t, r, start := TileForNode(id), reading the row of tile t (any stored
//     width >= t.Width; TileWidthAt says which width a tree size has) and
//     computing TileNodeHash(row, r, start>>r).
//  6. Call Nodes.Rehash(hashes) with the hashes in the order of IDs; it folds
//     the ephemeral node's parts and returns the RFC 6962 proof to send.
//  7. Clients check proofs with VerifyInclusion / VerifyConsistency (or
//     RootFromInclusionProof / RootFromConsistencyProof) against roots they
//     trust for the stated sizes; errors wrap ErrInvalidProof or
//     ErrRootMismatch.
//  8. Tiles are served at TileID.Path() (e.g. tile/0/x001/234,
//     tile/0/x001/234.p/7); ParseTilePath turns a requested path back into
//     a TileID and rejects anything non-canonical.
//
// # Concurrency
//
// A Range is not safe for concurrent use: guard it, or Clone it to give
// another goroutine a snapshot. Every function and every method of the value
// types (Hash, NodeID, Nodes, TileID) is safe for concurrent use.
//
// # What a proof binds
//
// Proofs bind leaves, indices and roots; a tree size only decides a proof's
// shape (its length and the side each hash goes on), so a root of another
// size whose proof has the same shape computes the same way. Always verify
// against the root signed together with the stated size, never against a
// root taken from elsewhere (TestSizeBoundByShapeOnly shows the case).
package merkle
