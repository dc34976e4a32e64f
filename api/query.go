package api

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/query"
)

// QueryService implements the ledger.v1.Query gRPC service over a
// query.Engine.
type QueryService struct {
	pb.UnimplementedQueryServer
	eng  *query.Engine
	view EventView
	log  *slog.Logger
}

// QueryOptions configure a QueryService. Engine is required.
type QueryOptions struct {
	Engine *query.Engine
	// View decrypts or masks each event returned (view.go).
	View   EventView
	Logger *slog.Logger
}

// NewQueryService returns the service; register it with Register.
func NewQueryService(o QueryOptions) *QueryService {
	s := &QueryService{eng: o.Engine, view: o.View, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Register adds the service to g.
func (s *QueryService) Register(g grpc.ServiceRegistrar) { pb.RegisterQueryServer(g, s) }

// Engine returns the service's engine.
func (s *QueryService) Engine() *query.Engine { return s.eng }

// exportChunk is how many entries one Export message carries.
const exportChunk = 256

func (s *QueryService) Query(ctx context.Context, req *pb.QueryRequest) (*pb.QueryResponse, error) {
	f, err := FilterFromProto(req.GetFilter())
	if err != nil {
		return nil, grpcError(s.log, "Query", err)
	}
	page, err := s.eng.Query(ctx, query.Request{Filter: f, Descending: req.Descending, Limit: int(req.Limit), Cursor: req.Cursor, SkipTotal: req.SkipTotal})
	if err != nil {
		return nil, grpcError(s.log, "Query", err)
	}
	resp := &pb.QueryResponse{NextCursor: page.NextCursor, HasMore: page.HasMore, Total: page.Total,
		TotalEstimated: page.TotalEstimated, Page: uint32(page.Page), TreeSize: page.TreeSize}
	for _, r := range page.Rows {
		e, err := s.view.entry(ctx, r.Index, r.Leaf)
		if err != nil {
			return nil, grpcError(s.log, "Query", fmt.Errorf("%w: entry %d: %v", ledger.ErrCorrupt, r.Index, err))
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

func (s *QueryService) Export(req *pb.ExportRequest, stream grpc.ServerStreamingServer[pb.ExportResponse]) error {
	ctx := stream.Context()
	f, err := FilterFromProto(req.GetFilter())
	if err != nil {
		return grpcError(s.log, "Export", err)
	}
	if req.Limit > 1<<62 {
		req.Limit = 1 << 62
	}
	msg := &pb.ExportResponse{}
	var last uint64
	send := func() error {
		if len(msg.Entries) == 0 {
			return nil
		}
		msg.Cursor = s.eng.CursorAfter(&f, req.Descending, last)
		err := stream.Send(msg)
		msg = &pb.ExportResponse{Entries: msg.Entries[:0:0]}
		return err
	}
	_, err = s.eng.Stream(ctx, query.Request{Filter: f, Descending: req.Descending, Limit: int(req.Limit), Cursor: req.Cursor}, func(r query.Row) error {
		e, err := s.view.entry(ctx, r.Index, r.Leaf)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ledger.ErrCorrupt, r.Index, err)
		}
		e.Leaf = append([]byte(nil), e.Leaf...) // r.Leaf is only valid during the call
		msg.Entries = append(msg.Entries, e)
		last = r.Index
		if len(msg.Entries) == exportChunk {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	return grpcError(s.log, "Export", err)
}

// FilterFromProto converts a wire filter; a bad time names its field.
func FilterFromProto(f *pb.QueryFilter) (query.Filter, error) {
	out := query.Filter{
		ActorID: f.GetActorId(), ActorType: f.GetActorType(), ActorIP: f.GetActorIp(),
		ActionType: f.GetActionType(), Resource: f.GetResource(), ResourceID: f.GetResourceId(), Result: f.GetResult(),
		Application: f.GetApplication(), Environment: f.GetEnvironment(), RequestID: f.GetRequestId(),
	}
	for _, t := range []struct {
		field string
		v     string
		dst   *time.Time
	}{
		{"filter.receivedAfter", f.GetReceivedAfter(), &out.ReceivedFrom},
		{"filter.receivedBefore", f.GetReceivedBefore(), &out.ReceivedTo},
		{"filter.timestampAfter", f.GetTimestampAfter(), &out.TimestampFrom},
		{"filter.timestampBefore", f.GetTimestampBefore(), &out.TimestampTo},
	} {
		if t.v == "" {
			continue
		}
		v, err := ParseTime(t.v)
		if err != nil {
			return out, &ledger.FieldError{Field: t.field, Reason: err.Error()}
		}
		*t.dst = v
	}
	return out, nil
}

// ParseTime reads an RFC 3339 time (fractional seconds optional).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time like 2024-01-15T10:30:00Z", s)
	}
	return t, nil
}
