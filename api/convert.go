package api

import (
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// EventFromProto converts a wire event to the ledger's model.
func EventFromProto(e *pb.Event) ledger.Event {
	if e == nil {
		return ledger.Event{}
	}
	var out ledger.Event
	out.ID, out.Timestamp, out.Version = e.GetId(), e.GetTimestamp(), e.GetVersion()
	if a := e.GetActor(); a != nil {
		out.Actor = ledger.Actor{ID: a.Id, Type: a.Type, IP: a.Ip, Session: a.Session, UserAgent: a.UserAgent}
	}
	if a := e.GetAction(); a != nil {
		out.Action = ledger.Action{Type: a.Type, Resource: a.Resource, ResourceID: a.ResourceId, Result: a.Result, Duration: a.Duration, Metadata: a.Metadata}
	}
	if c := e.GetContext(); c != nil {
		out.Context = ledger.Context{RequestID: c.RequestId, Environment: c.Environment, Application: c.Application, Version: c.Version}
	}
	return out
}

// EventToProto converts a ledger event to the wire.
func EventToProto(e *ledger.Event) *pb.Event {
	out := &pb.Event{
		Id: e.ID, Timestamp: e.Timestamp, Version: e.Version,
		Actor:  &pb.Actor{Id: e.Actor.ID, Type: e.Actor.Type, Ip: e.Actor.IP, Session: e.Actor.Session, UserAgent: e.Actor.UserAgent},
		Action: &pb.Action{Type: e.Action.Type, Resource: e.Action.Resource, ResourceId: e.Action.ResourceID, Result: e.Action.Result, Duration: e.Action.Duration, Metadata: e.Action.Metadata},
	}
	if e.Context != (ledger.Context{}) {
		out.Context = &pb.Context{RequestId: e.Context.RequestID, Environment: e.Context.Environment, Application: e.Context.Application, Version: e.Context.Version}
	}
	return out
}

// EntryToProto decodes a stored leaf into its wire entry; the leaf bytes
// travel verbatim.
func EntryToProto(index uint64, leaf []byte) (*pb.Entry, error) {
	return entryToProto(index, leaf, nil)
}

// entryToProto decodes leaf and, when view is set, lets it rewrite the
// decoded event (never the leaf bytes) before conversion.
func entryToProto(index uint64, leaf []byte, view func(*ledger.Event)) (*pb.Entry, error) {
	e, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		return nil, err
	}
	if view != nil {
		view(&e.Event)
	}
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

// CheckpointToProto converts a signed checkpoint.
func CheckpointToProto(cp *ledger.Checkpoint) *pb.Checkpoint {
	if cp == nil {
		return nil
	}
	return &pb.Checkpoint{Note: cp.Note, Origin: cp.Origin, Size: cp.Size, RootHash: cp.Root[:]}
}

// HashesToProto converts a proof.
func HashesToProto(hs []merkle.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// HashesFromProto converts a proof, rejecting hashes of the wrong length.
func HashesFromProto(bs [][]byte) ([]merkle.Hash, error) {
	out := make([]merkle.Hash, len(bs))
	for i, b := range bs {
		h, err := merkle.HashFromBytes(b)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}
