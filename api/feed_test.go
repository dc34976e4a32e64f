package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/auditledger/ledgerd/api"
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// serveFeed serves the Feed service on 127.0.0.1 and returns a client.
func serveFeed(t *testing.T, o api.FeedOptions) pb.FeedClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.NewFeedService(o).Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewFeedClient(conn)
}

func TestFeedSubscribeWithProofs(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 1500, 500)
	c := serveFeed(t, api.FeedOptions{Log: l.Store, Checkpoints: l.Ledger, Batch: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.Subscribe(ctx, &pb.SubscribeRequest{FromIndex: 200, Follow: true, WithProof: true})
	if err != nil {
		t.Fatal(err)
	}
	go l.Append(t, "e", 1500, 500, 100)
	var cp *ledger.Checkpoint
	for want := uint64(200); want < 2000; want++ {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if msg.Checkpoint != nil {
			if cp, err = ledger.OpenCheckpoint(msg.Checkpoint.Note, l.Keys.Verifier, "test.example/log"); err != nil {
				t.Fatal(err)
			}
		}
		e := msg.Entry
		if e.Index != want || e.Event.Id != fmt.Sprintf("e-%d", want) {
			t.Fatalf("got entry %d (%s), want %d", e.Index, e.Event.Id, want)
		}
		lh := merkle.LeafHash(e.Leaf)
		if string(lh[:]) != string(e.LeafHash) {
			t.Fatalf("entry %d: leaf hash does not match the leaf", want)
		}
		if cp == nil || msg.Inclusion.TreeSize != cp.Size {
			t.Fatalf("entry %d: proof for size %d without its checkpoint", want, msg.Inclusion.TreeSize)
		}
		proof, err := api.HashesFromProto(msg.Inclusion.Hashes)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyInclusion(lh, e.Index, cp.Size, proof, cp.Root); err != nil {
			t.Fatalf("entry %d: %v", want, err)
		}
	}
}

func TestFeedSubscribeEnds(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 300, 300)
	c := serveFeed(t, api.FeedOptions{Log: l.Store, Checkpoints: l.Ledger})
	stream, err := c.Subscribe(context.Background(), &pb.SubscribeRequest{FromIndex: 250})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Inclusion != nil || msg.Checkpoint != nil {
			t.Fatal("proof sent without with_proof")
		}
		n++
	}
	if n != 50 {
		t.Fatalf("%d entries, want 50", n)
	}
}

type okSink struct{}

func (okSink) Deliver(context.Context, []*feed.Item) error { return nil }
func (okSink) Close() error                                { return nil }

func TestFeedSinksStatus(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 10, 10)
	c0 := serveFeed(t, api.FeedOptions{Log: l.Store, Checkpoints: l.Ledger})
	resp, err := c0.SinksStatus(context.Background(), &pb.SinksStatusRequest{})
	if err != nil || resp.Healthy || len(resp.Sinks) != 0 {
		t.Fatalf("no sinks: %v %v", resp, err)
	}
	m, err := feed.NewManager(feed.ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer(), LeaderPoll: time.Millisecond,
		Sinks: []feed.SinkSpec{{Type: "test", Delivery: feed.Delivery{Name: "ok"}, Sink: okSink{}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	c := serveFeed(t, api.FeedOptions{Log: l.Store, Checkpoints: l.Ledger, Sinks: m})
	feedtest.WaitFor(t, 10*time.Second, func() string { return "not delivered" }, func() bool {
		resp, err = c.SinksStatus(context.Background(), &pb.SinksStatusRequest{})
		return err == nil && len(resp.Sinks) == 1 && resp.Sinks[0].Cursor == 10
	})
	s := resp.Sinks[0]
	if !resp.Healthy || s.Name != "ok" || s.Type != "test" || !s.Running || s.LagEvents != 0 || s.TreeSize != 10 || s.LastDelivery == "" {
		t.Fatalf("status %+v", resp)
	}
}

func TestSinksHealthHandler(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 5, 5)
	get := func(m *feed.Manager) (int, api.SinkDependencies) {
		rec := httptest.NewRecorder()
		api.SinksHealthHandler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health/dependencies", nil))
		var d api.SinkDependencies
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		return rec.Code, d
	}
	if code, d := get(nil); code != http.StatusOK || d.Status != "none" || len(d.Sinks) != 0 {
		t.Fatalf("no sinks: %d %+v", code, d)
	}
	m, err := feed.NewManager(feed.ManagerConfig{Store: l.Store, Committer: l.Ledger.Committer(), LeaderPoll: time.Millisecond,
		Sinks: []feed.SinkSpec{{Type: "test", Delivery: feed.Delivery{Name: "down", MinBackoff: feed.Duration(time.Millisecond), AlertAfter: feed.Duration(time.Millisecond)}, Sink: failSink{}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	feedtest.WaitFor(t, 10*time.Second, func() string { return "no alert" }, func() bool { return !m.Healthy() })
	code, d := get(m)
	if code != http.StatusServiceUnavailable || d.Status != "degraded" || len(d.Sinks) != 1 || d.Sinks[0].Status != "alerting" || d.Sinks[0].LagEvents != 5 || d.Sinks[0].LastError == "" {
		t.Fatalf("alerting sink: %d %+v", code, d)
	}
}

type failSink struct{}

func (failSink) Deliver(context.Context, []*feed.Item) error { return errors.New("connection refused") }
func (failSink) Close() error                                { return nil }
