package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

func startTestNode(t *testing.T, dir string) (*Node, pb.LedgerClient) {
	t.Helper()
	return startNodeIn(t, dir)
}

func startTestNodeB(b *testing.B) (*Node, pb.LedgerClient) { return startNodeIn(b, b.TempDir()) }

func startNodeIn(t testing.TB, dir string) (*Node, pb.LedgerClient) {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = dir
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "test.example/ledger"
	cfg.Security.Banner = io.Discard
	cfg.Security.SelfAudit.Disabled = true // these tests count entries
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()), withAdminToken(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		n.Close(context.Background())
	})
	return n, pb.NewLedgerClient(conn)
}

func event(actor string) *pb.Event {
	return &pb.Event{
		Actor:  &pb.Actor{Id: actor, Type: "user", Ip: "192.168.1.100"},
		Action: &pb.Action{Type: "update", Resource: "user_profile", ResourceId: "profile-123", Result: "success", Duration: 150},
	}
}

func TestGRPCAppendProveAndRead(t *testing.T) {
	n, c := startTestNode(t, t.TempDir())
	ctx := context.Background()
	v, err := note.NewVerifier(n.Keys().VerifierKey)
	if err != nil {
		t.Fatal(err)
	}

	one, err := c.Append(ctx, &pb.AppendRequest{Event: event("u1"), WaitCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.OpenCheckpoint(one.Checkpoint.Note, v, "test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	lh, _ := merkle.HashFromBytes(one.Result.LeafHash)
	proof, _ := hashes(one.Result.Inclusion.Hashes)
	if err := merkle.VerifyInclusion(lh, one.Result.Index, cp.Size, proof, cp.Root); err != nil {
		t.Fatal(err)
	}

	evs := []*pb.Event{event("u2"), event("u3"), event("u4")}
	evs[1].Id = "client-chosen"
	batch, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs, BatchId: "b-1", WaitCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for i, r := range batch.Results {
		if r.Index != uint64(i+1) {
			t.Fatalf("result %d has index %d", i, r.Index)
		}
		h.Write(r.LeafHash)
	}
	if !bytes.Equal(h.Sum(nil), batch.Checksum) || batch.BatchId != "b-1" {
		t.Fatal("batch checksum or id wrong")
	}
	again, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: evs[1:2]})
	if err != nil || !again.Results[0].Duplicate || again.Results[0].Index != 2 {
		t.Fatalf("retry of a known id: %v %v", again, err)
	}

	byID, err := c.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Id{Id: "client-chosen"}})
	if err != nil {
		t.Fatal(err)
	}
	if byID.Entry.Index != 2 || byID.Entry.Event.Actor.Id != "u3" {
		t.Fatalf("entry %v", byID.Entry)
	}
	if got := merkle.LeafHash(byID.Entry.Leaf); !bytes.Equal(got[:], byID.Entry.LeafHash) {
		t.Fatal("served leaf does not hash to the served leaf hash")
	}
	entries, err := c.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: 0, Count: 10})
	if err != nil || len(entries.Entries) != 4 || entries.TreeSize != 4 {
		t.Fatalf("GetEntries: %v %v", entries, err)
	}

	ip, err := c.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_LeafHash{LeafHash: byID.Entry.LeafHash}})
	if err != nil {
		t.Fatal(err)
	}
	cp4, err := ledger.OpenCheckpoint(ip.Checkpoint.Note, v, "")
	if err != nil {
		t.Fatal(err)
	}
	proof, _ = hashes(ip.Proof.Hashes)
	lh, _ = merkle.HashFromBytes(ip.Proof.LeafHash)
	if err := merkle.VerifyInclusion(lh, 2, cp4.Size, proof, cp4.Root); err != nil {
		t.Fatal(err)
	}
	cons, err := c.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: cp.Size, ToSize: cp4.Size})
	if err != nil {
		t.Fatal(err)
	}
	proof, _ = hashes(cons.Proof.Hashes)
	if err := merkle.VerifyConsistency(cp.Size, cp4.Size, proof, cp.Root, cp4.Root); err != nil {
		t.Fatal(err)
	}
	gc, err := c.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil || gc.VerifierKey != n.Keys().VerifierKey || !bytes.Equal(gc.Checkpoint.Note, ip.Checkpoint.Note) {
		t.Fatalf("GetCheckpoint: %v %v", gc, err)
	}
}

func hashes(bs [][]byte) ([]merkle.Hash, error) {
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

// rawCodec sends bytes as they are, to feed the server malformed protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func TestGRPCBadInputChangesNothing(t *testing.T) {
	n, c := startTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.Append(ctx, &pb.AppendRequest{Event: event("u1")}); err != nil {
		t.Fatal(err)
	}
	before := n.Ledger().Store().State()

	bad := func(mut func(e *pb.Event)) *pb.Event { e := event("x"); mut(e); return e }
	tooMany := make([]*pb.Event, ledger.MaxBatchEvents+1)
	for i := range tooMany {
		tooMany[i] = event("bulk")
	}
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		inMsg string
	}{
		{"no event", func() error { _, err := c.Append(ctx, &pb.AppendRequest{}); return err }, codes.InvalidArgument, "event"},
		{"no actor id", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Actor.Id = "" })})
			return err
		}, codes.InvalidArgument, "actor.id"},
		{"no action type", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Action.Type = "" })})
			return err
		}, codes.InvalidArgument, "action.type"},
		{"no resource", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Action.Resource = "" })})
			return err
		}, codes.InvalidArgument, "action.resource"},
		{"bad result", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Action.Result = "ok" })})
			return err
		}, codes.InvalidArgument, "action.result"},
		{"bad timestamp", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Timestamp = "15/01/2024" })})
			return err
		}, codes.InvalidArgument, "timestamp"},
		{"one bad event in a batch", func() error {
			_, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{event("a"), bad(func(e *pb.Event) { e.Action.Result = "" })}})
			return err
		}, codes.InvalidArgument, "events[1].action.result"},
		{"empty batch", func() error { _, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{}); return err }, codes.InvalidArgument, "no events"},
		{"oversized event", func() error {
			_, err := c.Append(ctx, &pb.AppendRequest{Event: bad(func(e *pb.Event) { e.Action.Metadata = map[string]string{"b": strings.Repeat("x", 70<<10)} })})
			return err
		}, codes.ResourceExhausted, "bytes"},
		{"too many events", func() error { _, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: tooMany}); return err }, codes.ResourceExhausted, "events"},
		{"unknown index", func() error {
			_, err := c.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: 99}})
			return err
		}, codes.NotFound, "99"},
		{"unknown id", func() error {
			_, err := c.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Id{Id: "nope"}})
			return err
		}, codes.NotFound, "nope"},
		{"proof beyond tree size", func() error {
			_, err := c.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_Index{Index: 0}, TreeSize: 50})
			return err
		}, codes.InvalidArgument, "tree size 50"},
		{"consistency beyond tree size", func() error {
			_, err := c.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 1, ToSize: 50})
			return err
		}, codes.InvalidArgument, "tree size 50"},
		{"consistency backwards", func() error {
			_, err := c.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 2, ToSize: 1})
			return err
		}, codes.InvalidArgument, "from size"},
		{"short leaf hash", func() error {
			_, err := c.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_LeafHash{LeafHash: []byte{1}}})
			return err
		}, codes.InvalidArgument, "32 bytes"},
		{"too many entries", func() error { _, err := c.GetEntries(ctx, &pb.GetEntriesRequest{Count: 5000}); return err }, codes.InvalidArgument, "count"},
		{"malformed protobuf", func() error {
			conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			in, out := []byte{0x0a, 0xff, 0xff, 0x01}, []byte(nil)
			return conn.Invoke(ctx, "/ledger.v1.Ledger/Append", &in, &out, grpc.ForceCodec(rawCodec{}))
		}, codes.Internal, "unmarshal"},
	}
	for _, tc := range cases {
		err := tc.call()
		s, _ := status.FromError(err)
		if s.Code() != tc.code || !strings.Contains(s.Message(), tc.inMsg) {
			t.Errorf("%s: got %v %q, want %v containing %q", tc.name, s.Code(), s.Message(), tc.code, tc.inMsg)
		}
	}
	if after := n.Ledger().Store().State(); after != before {
		t.Fatalf("bad input changed the tree: %+v -> %+v", before, after)
	}
}

func TestRestartServesSameCheckpoint(t *testing.T) {
	dir := t.TempDir()
	n, c := startTestNode(t, dir)
	ctx := context.Background()
	r, err := c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{event("a"), event("b")}, WaitCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	vkey := n.Keys().VerifierKey
	n.Close(ctx)
	n2, c2 := startTestNode(t, dir)
	if n2.Keys().VerifierKey != vkey {
		t.Fatal("keys changed across restart")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		gc, err := c2.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(gc.Checkpoint.Note, r.Checkpoint.Note) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint after restart differs:\n%s\nvs\n%s", gc.Checkpoint.Note, r.Checkpoint.Note)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigRejectsUnknownKeys(t *testing.T) {
	cfg := Defaults()
	err := DecodeConfig([]byte(`{"dataDir":"x","groupCommit":{"maxEvent":5}}`), &cfg)
	if err == nil || !strings.Contains(err.Error(), `"maxEvent"`) {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
	if err := DecodeConfig([]byte(`{"checkpointInterval":"5ms","groupCommit":{"maxWait":"300us"}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.CheckpointInterval) != 5*time.Millisecond || time.Duration(cfg.GroupCommit.MaxWait) != 300*time.Microsecond {
		t.Fatalf("durations: %+v", cfg)
	}
}
