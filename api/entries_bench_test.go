package api_test

import (
	"context"
	"testing"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/feed/feedtest"
)

// BenchmarkGetEntries reads pages of 1000 entries over gRPC on loopback
// from a 100k-entry ledger, with decoded events and with leaves_only.
// ns/entry includes the client's unmarshalling. No EventView is set
// (a node with field encryption also decrypts in the full case).
//
//	go test -run '^$' -bench GetEntries -benchtime 200x ./api/
func BenchmarkGetEntries(b *testing.B) {
	const size = 100_000
	l := feedtest.New(b)
	l.Append(b, "e", 0, size, 5000)
	c := serveLedger(b, l.Ledger)
	for _, tc := range []struct {
		name       string
		leavesOnly bool
	}{{"Full", false}, {"LeavesOnly", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				start := uint64(i*1000) % size
				resp, err := c.GetEntries(context.Background(), &pb.GetEntriesRequest{StartIndex: start, Count: 1000, LeavesOnly: tc.leavesOnly})
				if err != nil || len(resp.Entries) != 1000 {
					b.Fatalf("page at %d: %d entries, %v", start, len(resp.GetEntries()), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/entry")
		})
	}
}
