package api

import (
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/merkle"
)

// leafEntries is GetEntries with leaves_only: each entry's index, leaf
// and leaf hash, without decoding the event. Entries and hashes are
// allocated in one block each.
func leafEntries(start uint64, leaves [][]byte) []*pb.Entry {
	entries := make([]pb.Entry, len(leaves))
	hashes := make([]byte, len(leaves)*merkle.HashSize)
	out := make([]*pb.Entry, len(leaves))
	for j, leaf := range leaves {
		h := hashes[j*merkle.HashSize : (j+1)*merkle.HashSize : (j+1)*merkle.HashSize]
		lh := merkle.LeafHash(leaf)
		copy(h, lh[:])
		e := &entries[j]
		e.Index, e.Leaf, e.LeafHash = start+uint64(j), leaf, h
		out[j] = e
	}
	return out
}
