package api_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/auditledger/ledgerd/api"
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// serveLedger serves the Ledger service on 127.0.0.1 and returns a client.
func serveLedger(t testing.TB, l *ledger.Ledger) pb.LedgerClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.NewLedgerService(api.LedgerOptions{Ledger: l}).Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewLedgerClient(conn)
}

// TestGetEntriesPages checks the range-read pages against GetEntry one
// by one, with and without leaves_only.
func TestGetEntriesPages(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 1234, 500)
	c := serveLedger(t, l.Ledger)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, page := range []struct{ start, count, want uint64 }{
		{0, 0, 100}, {0, 1000, 1000}, {1000, 1000, 234}, {1233, 5, 1}, {1234, 5, 0}, {5000, 1, 0},
	} {
		full, err := c.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: page.start, Count: uint32(page.count)})
		if err != nil {
			t.Fatal(err)
		}
		lean, err := c.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: page.start, Count: uint32(page.count), LeavesOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(full.Entries) != int(page.want) || len(lean.Entries) != int(page.want) || full.TreeSize != 1234 || lean.TreeSize != 1234 {
			t.Fatalf("page %+v: %d and %d entries, sizes %d and %d", page, len(full.Entries), len(lean.Entries), full.TreeSize, lean.TreeSize)
		}
		for j, e := range full.Entries {
			i := page.start + uint64(j)
			one, err := c.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: i}})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(e, one.Entry) || e.Event == nil {
				t.Fatalf("entry %d: GetEntries and GetEntry differ", i)
			}
			want := &pb.Entry{Index: i, Leaf: e.Leaf, LeafHash: e.LeafHash}
			if !proto.Equal(lean.Entries[j], want) {
				t.Fatalf("entry %d: leaves_only gave %v", i, lean.Entries[j])
			}
			if h := merkle.LeafHash(e.Leaf); !bytes.Equal(h[:], e.LeafHash) {
				t.Fatalf("entry %d: leaf hash does not match the leaf", i)
			}
		}
	}
}

// TestGetInclusionProofLeafHash checks the proof's leaf hash (read from
// the tree) is the hash of the stored entry and the proof verifies.
func TestGetInclusionProofLeafHash(t *testing.T) {
	l := feedtest.New(t)
	l.Append(t, "e", 0, 700, 100)
	c := serveLedger(t, l.Ledger)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	feedtest.WaitFor(t, 10*time.Second, func() string { return "checkpoint of 700" }, func() bool { return l.Ledger.Checkpoint().Size == 700 })
	cp := l.Ledger.Checkpoint()
	for _, i := range []uint64{0, 255, 256, 511, 512, 699} {
		resp, err := c.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_Index{Index: i}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := c.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: i}})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Proof
		if !bytes.Equal(p.LeafHash, e.Entry.LeafHash) || p.TreeSize != cp.Size {
			t.Fatalf("entry %d: proof leaf hash %x, entry's %x", i, p.LeafHash, e.Entry.LeafHash)
		}
		hashes, err := api.HashesFromProto(p.Hashes)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyInclusion(merkle.Hash(p.LeafHash), i, cp.Size, hashes, cp.Root); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}
