package api

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// Appender is the write path the service uses: a *ledger.Ledger on a
// single node, the same wrapped by the cluster's forwarding on several.
type Appender interface {
	Append(ctx context.Context, events []ledger.Event) ([]ledger.AppendResult, error)
}

// LedgerService implements the ledger.v1.Ledger gRPC service.
type LedgerService struct {
	pb.UnimplementedLedgerServer
	l           *ledger.Ledger
	appender    Appender
	verifierKey string
	streamed    func() bool
	freshCP     func(ctx context.Context) (*ledger.Checkpoint, error)
	log         *slog.Logger
	view        EventView
}

// LedgerOptions configure a LedgerService. Only Ledger is required.
type LedgerOptions struct {
	Ledger      *ledger.Ledger
	Appender    Appender // defaults to Ledger
	VerifierKey string   // note verifier key served with checkpoints
	// Streamed reports whether change-feed sinks are configured and
	// healthy (the append response's "streamed").
	Streamed func() bool
	// LinearizableCheckpoint returns the freshest checkpoint after a
	// leader barrier; nil on a single node, where every read is fresh.
	LinearizableCheckpoint func(ctx context.Context) (*ledger.Checkpoint, error)
	// View decrypts or masks each event read for the caller (view.go);
	// nil returns events as stored.
	View   EventView
	Logger *slog.Logger
}

// NewLedgerService returns the service; register it with Register.
func NewLedgerService(o LedgerOptions) *LedgerService {
	s := &LedgerService{l: o.Ledger, appender: o.Appender, verifierKey: o.VerifierKey, streamed: o.Streamed, freshCP: o.LinearizableCheckpoint, log: o.Logger, view: o.View}
	if s.appender == nil {
		s.appender = o.Ledger
	}
	if s.streamed == nil {
		s.streamed = func() bool { return false }
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Register adds the service to g.
func (s *LedgerService) Register(g *grpc.Server) { pb.RegisterLedgerServer(g, s) }

const maxWait = 10 * time.Second

func (s *LedgerService) Append(ctx context.Context, req *pb.AppendRequest) (*pb.AppendResponse, error) {
	if req.GetEvent() == nil {
		return nil, grpcError(s.log, "Append", &ledger.FieldError{Field: "event", Reason: "required"})
	}
	res, cp, err := s.append(ctx, []ledger.Event{EventFromProto(req.Event)}, req.WaitCheckpoint)
	if err != nil {
		return nil, grpcError(s.log, "Append", err)
	}
	return &pb.AppendResponse{Result: res[0], Checkpoint: CheckpointToProto(cp), Streamed: s.streamed()}, nil
}

func (s *LedgerService) AppendBatch(ctx context.Context, req *pb.AppendBatchRequest) (*pb.AppendBatchResponse, error) {
	events := make([]ledger.Event, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		events[i] = EventFromProto(e)
	}
	res, cp, err := s.append(ctx, events, req.WaitCheckpoint)
	if err != nil {
		return nil, grpcError(s.log, "AppendBatch", err)
	}
	return &pb.AppendBatchResponse{Results: res, Checksum: BatchChecksum(res), Checkpoint: CheckpointToProto(cp), BatchId: req.BatchId, Streamed: s.streamed()}, nil
}

// BatchChecksum is SHA-256 over the leaf hashes of a batch's results, in
// order: a client that kept its results can recompute it.
func BatchChecksum(res []*pb.AppendResult) []byte {
	h := sha256.New()
	for _, r := range res {
		h.Write(r.LeafHash)
	}
	return h.Sum(nil)
}

func (s *LedgerService) append(ctx context.Context, events []ledger.Event, wait bool) ([]*pb.AppendResult, *ledger.Checkpoint, error) {
	results, err := s.appender.Append(ctx, events)
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkDuplicates(events, results); err != nil {
		return nil, nil, err
	}
	out := make([]*pb.AppendResult, len(results))
	backing := make([]pb.AppendResult, len(results)) // one allocation, not one per event
	var need uint64
	for i, r := range results {
		a := &backing[i]
		a.Index, a.Id, a.LeafHash, a.Signature, a.KeyId, a.Duplicate = r.Index, r.ID, r.LeafHash[:], r.Signature, r.KeyID, r.Duplicate
		out[i] = a
		need = max(need, r.Index+1)
	}
	if !wait {
		return out, nil, nil
	}
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	cp, err := s.l.WaitCheckpoint(wctx, need)
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for a checkpoint of size %d: %w", need, err)
	}
	for i, r := range results {
		proof, err := s.l.Store().InclusionProof(r.Index, cp.Size)
		if err != nil {
			return nil, nil, err
		}
		out[i].Inclusion = &pb.InclusionProof{Index: r.Index, TreeSize: cp.Size, LeafHash: r.LeafHash[:], Hashes: HashesToProto(proof)}
	}
	return out, cp, nil
}

func (s *LedgerService) GetEntry(ctx context.Context, req *pb.GetEntryRequest) (*pb.GetEntryResponse, error) {
	e, err := s.entry(ctx, req)
	if err != nil {
		return nil, grpcError(s.log, "GetEntry", err)
	}
	return &pb.GetEntryResponse{Entry: e}, nil
}

// entry is GetEntry with plain errors (the HTTP API shares it).
func (s *LedgerService) entry(ctx context.Context, req *pb.GetEntryRequest) (*pb.Entry, error) {
	st := s.l.Store()
	var idx uint64
	switch k := req.GetKey().(type) {
	case *pb.GetEntryRequest_Index:
		idx = k.Index
	case *pb.GetEntryRequest_Id:
		i, err := st.IndexByID(k.Id)
		if err != nil {
			return nil, err
		}
		idx = i
	default:
		return nil, &ledger.FieldError{Field: "index", Reason: "index or id required"}
	}
	leaf, err := st.Leaf(idx)
	if err != nil {
		return nil, err
	}
	e, err := s.view.entry(ctx, idx, leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ledger.ErrCorrupt, idx, err)
	}
	return e, nil
}

// MaxEntriesPerCall bounds GetEntries.
const MaxEntriesPerCall = 1000

func (s *LedgerService) GetEntries(ctx context.Context, req *pb.GetEntriesRequest) (*pb.GetEntriesResponse, error) {
	n := uint64(req.Count)
	if n == 0 {
		n = 100
	}
	if n > MaxEntriesPerCall {
		return nil, grpcError(s.log, "GetEntries", &ledger.FieldError{Field: "count", Reason: fmt.Sprintf("at most %d", MaxEntriesPerCall)})
	}
	st := s.l.Store()
	size := st.State().Size
	resp := &pb.GetEntriesResponse{TreeSize: size}
	if req.StartIndex >= size {
		return resp, nil
	}
	end := min(size, req.StartIndex+n)
	leaves, err := st.Leaves(req.StartIndex, end) // one range read
	if err != nil {
		return nil, grpcError(s.log, "GetEntries", err)
	}
	if req.LeavesOnly {
		resp.Entries = leafEntries(req.StartIndex, leaves)
		return resp, nil
	}
	resp.Entries = make([]*pb.Entry, 0, len(leaves))
	for j, leaf := range leaves {
		i := req.StartIndex + uint64(j)
		e, err := s.view.entry(ctx, i, leaf)
		if err != nil {
			// A tampered entry must still reach verify-log so it can name
			// the index: send the raw leaf without the decoded event.
			h := merkle.LeafHash(leaf)
			e = &pb.Entry{Index: i, Leaf: leaf, LeafHash: h[:]}
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

func (s *LedgerService) checkpoint(ctx context.Context, linearizable bool) (*ledger.Checkpoint, error) {
	if linearizable && s.freshCP != nil {
		return s.freshCP(ctx)
	}
	// Covers every entry this node had committed when asked: a client
	// that appended and then asks for the checkpoint finds its entries.
	return s.l.FreshCheckpoint(ctx)
}

func (s *LedgerService) GetCheckpoint(ctx context.Context, req *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	cp, err := s.checkpoint(ctx, req.Linearizable)
	if err != nil {
		return nil, grpcError(s.log, "GetCheckpoint", err)
	}
	return &pb.GetCheckpointResponse{Checkpoint: CheckpointToProto(cp), VerifierKey: s.verifierKey}, nil
}

func (s *LedgerService) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	resp, err := s.inclusion(ctx, req)
	if err != nil {
		return nil, grpcError(s.log, "GetInclusionProof", err)
	}
	return resp, nil
}

// inclusion is GetInclusionProof with plain errors.
func (s *LedgerService) inclusion(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	st := s.l.Store()
	var idx uint64
	switch k := req.GetKey().(type) {
	case *pb.GetInclusionProofRequest_Index:
		idx = k.Index
	case *pb.GetInclusionProofRequest_LeafHash:
		h, err := merkle.HashFromBytes(k.LeafHash)
		if err != nil {
			return nil, &ledger.FieldError{Field: "leafHash", Reason: "must be 32 bytes"}
		}
		if idx, err = st.IndexByLeafHash(h); err != nil {
			return nil, err
		}
	default:
		return nil, &ledger.FieldError{Field: "index", Reason: "index or leafHash required"}
	}
	size := req.TreeSize
	var cp *ledger.Checkpoint
	if size == 0 {
		cp = s.l.Checkpoint()
		if idx >= cp.Size && idx < st.State().Size {
			// Committed but not yet checkpointed: the signer is at most
			// a few milliseconds behind.
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := s.l.WaitCheckpoint(wctx, idx+1)
			cancel()
			if err == nil {
				cp = c
			}
		}
		size = cp.Size
	}
	if idx >= size {
		if idx >= st.State().Size {
			return nil, fmt.Errorf("%w: index %d (tree size %d)", ledger.ErrNotFound, idx, st.State().Size)
		}
		return nil, fmt.Errorf("%w: index %d is not below tree size %d", ledger.ErrInvalid, idx, size)
	}
	proof, err := st.InclusionProof(idx, size)
	if err != nil {
		return nil, err
	}
	// The leaf hash the proof is about, as the tree holds it (a tile row,
	// in memory), not re-read from the entry.
	h, err := st.LeafHash(idx)
	if err != nil {
		return nil, err
	}
	return &pb.GetInclusionProofResponse{
		Proof:      &pb.InclusionProof{Index: idx, TreeSize: size, LeafHash: h[:], Hashes: HashesToProto(proof)},
		Checkpoint: CheckpointToProto(cp),
	}, nil
}

func (s *LedgerService) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	resp, err := s.consistency(ctx, req)
	if err != nil {
		return nil, grpcError(s.log, "GetConsistencyProof", err)
	}
	return resp, nil
}

// consistency is GetConsistencyProof with plain errors.
func (s *LedgerService) consistency(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	to := req.ToSize
	var cp *ledger.Checkpoint
	if to == 0 {
		cp = s.l.Checkpoint()
		to = cp.Size
	}
	proof, err := s.l.Store().ConsistencyProof(req.FromSize, to)
	if err != nil {
		return nil, err
	}
	return &pb.GetConsistencyProofResponse{
		Proof:      &pb.ConsistencyProof{FromSize: req.FromSize, ToSize: to, Hashes: HashesToProto(proof)},
		Checkpoint: CheckpointToProto(cp),
	}, nil
}
