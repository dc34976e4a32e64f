package api

import (
	"context"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// EventView rewrites, in place, an event decoded from a stored leaf
// before it is returned to the caller in ctx: it decrypts the encrypted
// fields the caller may see and masks the others ("[encrypted]",
// "[erased]"). The leaf bytes themselves always travel verbatim, so
// proofs verify whatever the view shows.
type EventView func(ctx context.Context, e *ledger.Event)

// entry is EntryToProto with the view applied to the decoded event.
func (v EventView) entry(ctx context.Context, index uint64, leaf []byte) (*pb.Entry, error) {
	if v == nil {
		return EntryToProto(index, leaf)
	}
	e, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		return nil, err
	}
	v(ctx, &e.Event)
	h := merkle.LeafHash(leaf)
	return &pb.Entry{
		Index:      index,
		Leaf:       leaf,
		LeafHash:   h[:],
		Event:      EventToProto(&e.Event),
		ReceivedAt: e.ReceivedTime().Format(time.RFC3339Nano),
		KeyId:      e.KeyID,
		Signature:  e.Signature,
	}, nil
}
