package api

import (
	"context"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
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
	return entryToProto(index, leaf, func(e *ledger.Event) { v(ctx, e) })
}
