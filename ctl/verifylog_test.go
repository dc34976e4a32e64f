package ctl

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/node"
)

type logOut struct {
	OK             bool    `json:"ok"`
	Origin         string  `json:"origin"`
	TreeSize       uint64  `json:"treeSize"`
	RootHash       []byte  `json:"rootHash"`
	KeyPinned      bool    `json:"keyPinned"`
	HMACChecked    bool    `json:"hmacChecked"`
	EntriesChecked uint64  `json:"entriesChecked"`
	FirstBadIndex  *uint64 `json:"firstBadIndex"`
	Reason         string  `json:"reason"`
}

func TestVerifyLogGood(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("g", 40), "append")
	since := writeFile(t, "since", tn.mustCtl("", "checkpoint"))
	tn.mustCtl(ndjson("h", 97), "append", "--wait")
	hmacKey := tn.dir + "/" + node.HMACKeyFile

	r := tn.ctl("", "verify-log", "--key", tn.vkey(), "--page-size", "16", "--since", since, "--hmac-key", hmacKey, "--progress")
	if r.code != 0 {
		t.Fatal(r)
	}
	rep := lines[logOut](t, r.stdout)[0]
	if !rep.OK || rep.TreeSize < 137 || rep.EntriesChecked != rep.TreeSize || !rep.KeyPinned || !rep.HMACChecked || rep.Origin != "test.example/ledger" || len(rep.RootHash) != 32 {
		t.Fatalf("report %+v", rep)
	}
	final := fmt.Sprintf("verify-log: %d/%d entries (100%%)\n", rep.TreeSize, rep.TreeSize)
	if !strings.HasSuffix(r.stderr, final) || strings.Contains(r.stderr, "ledgerctl:") {
		t.Fatalf("progress on stderr: %q", r.stderr)
	}

	// Without --key: the server's key, said twice.
	r = tn.ctl("", "verify-log")
	if r.code != 0 || !strings.Contains(r.stderr, "not pinned") || strings.Contains(r.stderr, "verify-log:") {
		t.Fatal(r)
	}
	if rep := lines[logOut](t, r.stdout)[0]; !rep.OK || rep.KeyPinned {
		t.Fatalf("report %+v", rep)
	}

	// Against a key that did not sign: fails without blaming an entry.
	r = tn.ctl("", "verify-log", "--key", otherKey(t))
	wantFailure(t, r, 1, "checkpoint signature")
	if rep := lines[logOut](t, r.stdout)[0]; rep.OK || rep.FirstBadIndex != nil {
		t.Fatalf("report %+v", rep)
	}
	// An HMAC key the log was not signed with.
	r = tn.ctl("", "verify-log", "--key", tn.vkey(), "--hmac-key", writeFile(t, "hmac", "another key entirely\n"))
	wantFailure(t, r, 1, "entry 0:", "HMAC")
}

func TestVerifyLogEmpty(t *testing.T) {
	tn := startNode(t)
	r := tn.ctl("", "verify-log", "--key", tn.vkey())
	if r.code != 0 {
		t.Fatal(r)
	}
	if rep := lines[logOut](t, r.stdout)[0]; !rep.OK || rep.TreeSize != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// TestVerifyLogTamper changes stored entries behind the server's back
// (Pebble opened directly while the node is down) and checks verify-log
// names the first changed index, however the change shows.
func TestVerifyLogTamper(t *testing.T) {
	const size = 150
	tests := []struct {
		name   string
		index  []uint64 // entries to change; the first is the one to find
		change func(t *testing.T, leaf []byte) []byte
		want   string
	}{
		{
			// Still a canonical leaf of a valid event: only the tree
			// tells, found by bisection with consistency proofs.
			name: "byte of the resource id", index: []uint64{77},
			change: func(t *testing.T, leaf []byte) []byte { return flipInString(t, leaf, "doc-") },
			want:   "not the signed tree",
		},
		{
			name: "byte of the first page", index: []uint64{3},
			change: func(t *testing.T, leaf []byte) []byte { return flipInString(t, leaf, "doc-") },
			want:   "not the signed tree",
		},
		{
			name: "last entry", index: []uint64{size - 1},
			change: func(t *testing.T, leaf []byte) []byte { return flipInString(t, leaf, "doc-") },
			want:   "not the signed tree",
		},
		{
			name: "format byte", index: []uint64{64},
			change: func(t *testing.T, leaf []byte) []byte { leaf[0] ^= 0xff; return leaf },
			want:   "does not decode",
		},
		{
			name: "signature byte", index: []uint64{100},
			change: func(t *testing.T, leaf []byte) []byte { leaf[len(leaf)-1] ^= 1; return leaf },
			want:   "not the signed tree",
		},
		{
			name: "truncated", index: []uint64{20},
			change: func(t *testing.T, leaf []byte) []byte { return leaf[:len(leaf)-3] },
			want:   "does not decode",
		},
		{
			name: "two entries, the earlier named", index: []uint64{33, 120},
			change: func(t *testing.T, leaf []byte) []byte { return flipInString(t, leaf, "doc-") },
			want:   "not the signed tree",
		},
		{
			name: "deleted", index: []uint64{90},
			change: func(t *testing.T, leaf []byte) []byte { return nil },
			want:   "server cannot serve the entry",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := startNode(t)
			tn.mustCtl(ndjson("t", size), "append", "--wait")
			tn.stop()
			tamper(t, tn.dir, tc.index, tc.change)
			tn.start()

			r := tn.ctl("", "verify-log", "--key", tn.vkey(), "--page-size", "32")
			t.Logf("stdout: %sstderr: %s", r.stdout, r.stderr)
			bad := strconv.FormatUint(tc.index[0], 10)
			wantFailure(t, r, 1, "verification failed: entry "+bad+": ", tc.want)
			rep := lines[logOut](t, r.stdout)[0]
			if rep.OK || rep.FirstBadIndex == nil || *rep.FirstBadIndex != tc.index[0] || rep.TreeSize < size {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// flipInString changes the byte after the first occurrence of marker.
func flipInString(t *testing.T, leaf []byte, marker string) []byte {
	t.Helper()
	i := strings.Index(string(leaf), marker)
	if i < 0 {
		t.Fatalf("leaf has no %q", marker)
	}
	leaf[i+len(marker)] ^= 0x01 // a digit stays a digit
	return leaf
}

// tamper rewrites (or, when change returns nil, deletes) the stored
// leaves at indices in the node's Pebble database.
func tamper(t *testing.T, dataDir string, indices []uint64, change func(*testing.T, []byte) []byte) {
	t.Helper()
	db, err := pebble.Open(node.StoreDir(dataDir), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, i := range indices {
		k := ledger.EntryKey(i)
		v, closer, err := db.Get(k)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		leaf := append([]byte(nil), v...)
		closer.Close()
		if nv := change(t, leaf); nv == nil {
			err = db.Delete(k, pebble.Sync)
		} else {
			err = db.Set(k, nv, pebble.Sync)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// lyingServer forwards to a real node and changes what GetEntries and
// GetCheckpoint return, to check verify-log compares the server's
// fields with what it recomputes.
type lyingServer struct {
	pb.UnimplementedLedgerServer
	c         pb.LedgerClient
	entry     func(e *pb.Entry)
	entries   func(r *pb.GetEntriesResponse)
	cp        func(r *pb.GetCheckpointResponse)
	authority context.Context
}

func (s *lyingServer) GetCheckpoint(ctx context.Context, req *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	r, err := s.c.GetCheckpoint(s.authority, req)
	if err == nil && s.cp != nil {
		s.cp(r)
	}
	return r, err
}

func (s *lyingServer) GetEntries(ctx context.Context, req *pb.GetEntriesRequest) (*pb.GetEntriesResponse, error) {
	r, err := s.c.GetEntries(s.authority, req)
	if err != nil {
		return nil, err
	}
	if s.entry != nil {
		for _, e := range r.Entries {
			s.entry(e)
		}
	}
	if s.entries != nil {
		s.entries(r)
	}
	return r, nil
}

func (s *lyingServer) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	return s.c.GetConsistencyProof(s.authority, req)
}

func TestVerifyLogServerFields(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("s", 40), "append", "--wait")
	conn, err := grpc.NewClient(tn.n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	authority := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tn.token)

	at := func(i uint64, f func(e *pb.Entry)) func(e *pb.Entry) {
		return func(e *pb.Entry) {
			if e.Index == i {
				f(e)
			}
		}
	}
	tests := []struct {
		name string
		s    lyingServer
		bad  string // the index named, "" for none
		want string
	}{
		{"leaf hash", lyingServer{entry: at(10, func(e *pb.Entry) { e.LeafHash[0] ^= 1 })}, "10", "leafHash"},
		{"index label", lyingServer{entry: at(11, func(e *pb.Entry) { e.Index = 12 })}, "11", "labels it index 12"},
		{"event field", lyingServer{entry: at(12, func(e *pb.Entry) { e.Event.Action.Resource = "elsewhere" })}, "12", "action.resource"},
		{"event metadata", lyingServer{entry: at(13, func(e *pb.Entry) { e.Event.Action.Metadata["k"] = "x" })}, "13", "action.metadata.k"},
		{"no event", lyingServer{entry: at(14, func(e *pb.Entry) { e.Event = nil })}, "14", "no decoded event"},
		{"received at", lyingServer{entry: at(15, func(e *pb.Entry) { e.ReceivedAt = "2000-01-01T00:00:00Z" })}, "15", "receivedAt"},
		{"key id", lyingServer{entry: at(16, func(e *pb.Entry) { e.KeyId = "other" })}, "16", "keyId"},
		{"signature", lyingServer{entry: at(17, func(e *pb.Entry) { e.Signature = []byte("forged") })}, "17", "signature"},
		{"short log", lyingServer{entries: func(r *pb.GetEntriesResponse) { r.TreeSize = 25 }}, "25", "fewer than its checkpoint"},
		{"checkpoint fields", lyingServer{cp: func(r *pb.GetCheckpointResponse) { r.Checkpoint.Size++ }}, "", "differ from its signed note"},
		{"checkpoint note", lyingServer{cp: func(r *pb.GetCheckpointResponse) { r.Checkpoint.Note[3] ^= 1 }}, "", "checkpoint signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.c, s.authority = pb.NewLedgerClient(conn), authority
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			pb.RegisterLedgerServer(srv, &s)
			done := make(chan struct{})
			go func() { defer close(done); srv.Serve(lis) }()
			defer func() { srv.Stop(); <-done }()

			r := runCtl("", "--addr", lis.Addr().String(), "verify-log", "--key", tn.vkey(), "--page-size", "8")
			rep := lines[logOut](t, r.stdout)[0]
			if tc.bad == "" {
				wantFailure(t, r, 1, tc.want)
				if rep.FirstBadIndex != nil {
					t.Fatalf("report %+v", rep)
				}
				return
			}
			wantFailure(t, r, 1, "entry "+tc.bad+": ", tc.want)
			if rep.OK || rep.FirstBadIndex == nil || strconv.FormatUint(*rep.FirstBadIndex, 10) != tc.bad {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}
