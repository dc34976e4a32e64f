package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/ledger"
)

// FeedService implements the ledger.v1.Feed gRPC service: the change
// feed as a server stream, and the status of the SIEM sinks.
type FeedService struct {
	pb.UnimplementedFeedServer
	o FeedOptions
}

// FeedOptions configure a FeedService. Log and Checkpoints are required.
type FeedOptions struct {
	Log         feed.Log         // the *ledger.Store
	Checkpoints feed.Checkpoints // the *ledger.Ledger, for proofs
	Sinks       *feed.Manager    // nil when the node runs no sinks
	// Batch is how many entries one read fetches ahead per stream
	// (default 256): the stream's memory bound beside gRPC's window.
	Batch int
	// View decrypts or masks each streamed event for the caller (view.go).
	View   EventView
	Logger *slog.Logger
}

// NewFeedService returns the service; register it with Register.
func NewFeedService(o FeedOptions) *FeedService {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &FeedService{o: o}
}

// Register adds the service to g.
func (s *FeedService) Register(g *grpc.Server) { pb.RegisterFeedServer(g, s) }

// Subscribe streams entries from req.FromIndex. A slow client holds the
// stream back through gRPC flow control; the server reads no further
// ahead than one batch.
func (s *FeedService) Subscribe(req *pb.SubscribeRequest, stream grpc.ServerStreamingServer[pb.SubscribeResponse]) error {
	opts := feed.Options{Buffer: s.o.Batch, Follow: req.Follow}
	if req.WithProof {
		opts.Proofs = s.o.Checkpoints
	}
	sub := feed.Subscribe(s.o.Log, req.FromIndex, opts)
	ctx := stream.Context()
	var lastCP *ledger.Checkpoint
	for {
		batch, err := sub.NextBatch(ctx, s.o.Batch, 0)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return grpcError(s.o.Logger, "Subscribe", err)
		}
		for _, it := range batch {
			msg := &pb.SubscribeResponse{Entry: ItemToProto(it)}
			if s.o.View != nil {
				ev := it.Entry.Event // a copy; the view replaces, never edits, the metadata map
				s.o.View(ctx, &ev)
				msg.Entry.Event = EventToProto(&ev)
			}
			if it.Proof != nil || it.Checkpoint != nil {
				msg.Inclusion = &pb.InclusionProof{Index: it.Index, TreeSize: it.Checkpoint.Size, LeafHash: it.LeafHash[:], Hashes: HashesToProto(it.Proof)}
				if it.Checkpoint != lastCP {
					msg.Checkpoint = CheckpointToProto(it.Checkpoint)
					lastCP = it.Checkpoint
				}
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
	}
}

// ItemToProto converts a feed item to its wire entry (leaf verbatim).
func ItemToProto(it *feed.Item) *pb.Entry {
	e := it.Entry
	return &pb.Entry{
		Index:      it.Index,
		Leaf:       it.Leaf,
		LeafHash:   it.LeafHash[:],
		Event:      EventToProto(&e.Event),
		ReceivedAt: e.ReceivedTime().Format(time.RFC3339Nano),
		KeyId:      e.KeyID,
		Signature:  e.Signature,
	}
}

// SinksStatus reports every configured sink.
func (s *FeedService) SinksStatus(ctx context.Context, _ *pb.SinksStatusRequest) (*pb.SinksStatusResponse, error) {
	resp := &pb.SinksStatusResponse{Healthy: s.o.Sinks.Healthy()}
	for _, st := range s.o.Sinks.Status() {
		resp.Sinks = append(resp.Sinks, SinkStatusToProto(st))
	}
	return resp, nil
}

// SinkStatusToProto converts one sink's status.
func SinkStatusToProto(st feed.Status) *pb.SinkStatus {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return &pb.SinkStatus{
		Name: st.Name, Type: st.Type, Running: st.Running,
		Cursor: st.Cursor, TreeSize: st.TreeSize, LagEvents: st.LagEvents, LagSeconds: st.LagSeconds,
		Delivered: st.Delivered, Failed: st.Failed, DeadLettered: st.DeadLettered,
		LastError: st.LastError, LastErrorAt: ts(st.LastErrorAt), FailingSince: ts(st.FailingSince),
		LastDelivery: ts(st.LastDelivery), Alerting: st.Alerting,
	}
}
