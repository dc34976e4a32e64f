package node_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/ctl"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
	"github.com/auditledger/ledgerd/node"
)

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// secureNode is a node with security on as shipped (tokens, encryption,
// self-audit), its logs and banner captured.
type secureNode struct {
	t      *testing.T
	n      *node.Node
	dir    string
	logs   *syncBuffer
	banner *syncBuffer
	admin  string
	wrote  bool // the node wrote admin (else a test set it)
}

func startSecure(t *testing.T, dir string, mutate func(*node.Config)) *secureNode {
	t.Helper()
	sn := &secureNode{t: t, dir: dir, logs: &syncBuffer{}, banner: &syncBuffer{}}
	cfg := node.Defaults()
	cfg.DataDir = dir
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Origin = "secure.test/ledger"
	cfg.LogLevel = "debug"
	cfg.Security.Banner = sn.banner
	cfg.Security.SelfAudit.FlushInterval = node.Duration(20 * time.Millisecond)
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := node.Start(context.Background(), cfg, node.NewLogger(sn.logs, &cfg))
	if err != nil {
		t.Fatal(err)
	}
	sn.n = n
	t.Cleanup(sn.stop)
	if b, err := os.ReadFile(filepath.Join(dir, node.AdminTokenFile)); err == nil {
		sn.admin, sn.wrote = strings.TrimSpace(string(b)), true
	}
	return sn
}

func (sn *secureNode) stop() {
	if sn.n != nil {
		sn.n.Close(context.Background())
		sn.n = nil
	}
}

// conn dials the node with token ("" for none) over plaintext loopback.
func (sn *secureNode) conn(token string) *grpc.ClientConn {
	sn.t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerCredentials(token, false)))
	}
	cc, err := grpc.NewClient(sn.n.GRPCAddr(), opts...)
	if err != nil {
		sn.t.Fatal(err)
	}
	sn.t.Cleanup(func() { cc.Close() })
	return cc
}

func (sn *secureNode) createToken(role auth.Role, expires string) (string, string) {
	sn.t.Helper()
	r, err := pb.NewAdminClient(sn.conn(sn.admin)).CreateToken(context.Background(), &pb.CreateTokenRequest{Role: string(role), Name: "test " + string(role), ExpiresIn: expires})
	if err != nil {
		sn.t.Fatal(err)
	}
	return r.Token, r.Info.Id
}

func seedEvent(actor string) *pb.Event {
	return &pb.Event{
		Timestamp: "2024-01-15T10:30:00.000Z",
		Actor:     &pb.Actor{Id: actor, Type: "user", Ip: "198.51.100.23", Session: "sess-" + actor},
		Action: &pb.Action{Type: "update", Resource: "user_profile", ResourceId: "profile-123", Result: "success", Duration: 150,
			Metadata: map[string]string{"password": "correct-horse-" + actor, "format": "csv"}},
		Context: &pb.Context{RequestId: "req-abc-123", Environment: "production", Application: "user-service", Version: "2.1.0"},
		Version: "1.0.0",
	}
}

// call is one RPC of the matrix.
type call struct {
	name string
	do   func(ctx context.Context, cc *grpc.ClientConn) error
}

func matrixCalls() []call {
	L := func(cc *grpc.ClientConn) pb.LedgerClient { return pb.NewLedgerClient(cc) }
	A := func(cc *grpc.ClientConn) pb.AdminClient { return pb.NewAdminClient(cc) }
	F := func(cc *grpc.ClientConn) pb.FeedClient { return pb.NewFeedClient(cc) }
	return []call{
		{"Ledger/Append", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).Append(ctx, &pb.AppendRequest{Event: seedEvent("m1")})
			return err
		}},
		{"Ledger/AppendBatch", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{seedEvent("m2")}})
			return err
		}},
		{"Ledger/GetEntry", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: 0}})
			return err
		}},
		{"Ledger/GetEntries", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).GetEntries(ctx, &pb.GetEntriesRequest{Count: 2})
			return err
		}},
		{"Ledger/GetCheckpoint", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
			return err
		}},
		{"Ledger/GetInclusionProof", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_Index{Index: 0}})
			return err
		}},
		{"Ledger/GetConsistencyProof", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := L(cc).GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 1})
			return err
		}},
		{"Feed/Subscribe", func(ctx context.Context, cc *grpc.ClientConn) error {
			s, err := F(cc).Subscribe(ctx, &pb.SubscribeRequest{FromIndex: 0})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}},
		{"Feed/SinksStatus", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := F(cc).SinksStatus(ctx, &pb.SinksStatusRequest{})
			return err
		}},
		{"Query/Query", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pb.NewQueryClient(cc).Query(ctx, &pb.QueryRequest{Limit: 2})
			return err
		}},
		{"Query/Export", func(ctx context.Context, cc *grpc.ClientConn) error {
			s, err := pb.NewQueryClient(cc).Export(ctx, &pb.ExportRequest{Limit: 2})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}},
		{"Admin/WhoAmI", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).WhoAmI(ctx, &pb.WhoAmIRequest{})
			return err
		}},
		{"Admin/CreateToken", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).CreateToken(ctx, &pb.CreateTokenRequest{Role: "auditor", Name: "matrix"})
			return err
		}},
		{"Admin/ListTokens", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).ListTokens(ctx, &pb.ListTokensRequest{})
			return err
		}},
		{"Admin/RevokeToken", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).RevokeToken(ctx, &pb.RevokeTokenRequest{Id: "0123456789abcdef"})
			return err
		}},
		{"Admin/RotateKey", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).RotateKey(ctx, &pb.RotateKeyRequest{})
			return err
		}},
		{"Admin/ListKeys", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).ListKeys(ctx, &pb.ListKeysRequest{})
			return err
		}},
		{"Admin/Erase", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := A(cc).Erase(ctx, &pb.EraseRequest{Subject: "nobody", Reason: "matrix test"})
			return err
		}},
		{"Health/Check", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}},
	}
}

// allowed is the specification (issue 6), written out independently of
// the auth package's tables: which callers may make each call.
var allowed = map[string][]string{
	"Ledger/Append":              {"ingest", "audit_admin"},
	"Ledger/AppendBatch":         {"ingest", "audit_admin"},
	"Ledger/GetEntry":            {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer"},
	"Ledger/GetEntries":          {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer"},
	"Ledger/GetCheckpoint":       {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"Ledger/GetInclusionProof":   {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"Ledger/GetConsistencyProof": {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"Feed/Subscribe":             {"audit_admin", "compliance_officer"}, // an export
	"Feed/SinksStatus":           {"audit_admin"},
	"Query/Query":                {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer"},
	"Query/Export":               {"audit_admin", "compliance_officer"},
	"Admin/WhoAmI":               {"anonymous", "audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "ingest", "auditor"},
	"Admin/CreateToken":          {"audit_admin"},
	"Admin/ListTokens":           {"audit_admin"},
	"Admin/RevokeToken":          {"audit_admin"},
	"Admin/RotateKey":            {"audit_admin"},
	"Admin/ListKeys":             {"audit_admin"},
	"Admin/Erase":                {"audit_admin"},
	"Health/Check":               {"anonymous", "audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "ingest", "auditor"},
}

func TestRoleMatrixGRPC(t *testing.T) {
	sn := startSecure(t, t.TempDir(), nil)
	ctx := context.Background()
	if _, err := pb.NewLedgerClient(sn.conn(sn.admin)).Append(ctx, &pb.AppendRequest{Event: seedEvent("first")}); err != nil {
		t.Fatal(err)
	}
	conns := map[string]*grpc.ClientConn{"anonymous": sn.conn("")}
	for _, r := range auth.Roles() {
		tok, _ := sn.createToken(r, "")
		conns[string(r)] = sn.conn(tok)
	}
	calls := matrixCalls()
	if len(calls) != len(allowed) {
		t.Fatalf("%d calls, %d specified", len(calls), len(allowed))
	}
	// Every RPC a single node serves to clients is in the matrix (the
	// Cluster service is checked on a cluster, in TestErasureOnCluster).
	for m, rule := range auth.DefaultMethods() {
		name := strings.TrimPrefix(strings.TrimPrefix(m, "/ledger.v1."), "/grpc.health.v1.")
		if rule.Internal || strings.HasPrefix(name, "Cluster/") || strings.Contains(m, "reflection") || name == "Health/Watch" || name == "Health/List" {
			continue
		}
		if _, ok := allowed[name]; !ok {
			t.Errorf("%s is not in the role matrix", m)
		}
	}
	for _, c := range calls {
		for who, cc := range conns {
			want := slices.Contains(allowed[c.name], who)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.do(cctx, cc)
			cancel()
			code := status.Code(err)
			switch {
			case want && (code == codes.Unauthenticated || code == codes.PermissionDenied):
				t.Errorf("%s as %s: refused (%v), want allowed", c.name, who, err)
			case !want && who == "anonymous" && code != codes.Unauthenticated:
				t.Errorf("%s without credentials: %v, want Unauthenticated", c.name, err)
			case !want && who != "anonymous" && code != codes.PermissionDenied:
				t.Errorf("%s as %s: %v, want PermissionDenied", c.name, who, err)
			case !want && who != "anonymous" && !strings.Contains(status.Convert(err).Message(), "lacks permission"):
				t.Errorf("%s as %s: %q does not name the missing permission", c.name, who, status.Convert(err).Message())
			case want && err != nil && c.name != "Admin/RevokeToken":
				t.Errorf("%s as %s: %v", c.name, who, err)
			}
		}
	}
	scanLogs(t, sn, nil)
}

func TestBadTokens(t *testing.T) {
	sn := startSecure(t, t.TempDir(), nil)
	ctx := context.Background()
	viewer, viewerID := sn.createToken(auth.RoleViewer, "")
	admin := pb.NewAdminClient(sn.conn(sn.admin))
	if _, err := admin.RevokeToken(ctx, &pb.RevokeTokenRequest{Id: viewerID}); err != nil {
		t.Fatal(err)
	}
	forged := viewer[:len(viewer)-2] + "AA"
	if forged == viewer {
		forged = viewer[:len(viewer)-2] + "AQ"
	}
	read := func(tok string) error {
		_, err := pb.NewLedgerClient(sn.conn(tok)).GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		return err
	}
	for name, c := range map[string]struct{ tok, msg string }{
		"missing":   {"", "credentials required"},
		"malformed": {"not-a-token", "malformed"},
		"forged":    {forged, "unknown token"},
		"unknown":   {auth.NewToken().String(), "unknown token"},
		"revoked":   {viewer, "revoked"},
	} {
		err := read(c.tok)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), c.msg) {
			t.Errorf("%s token: %v, want Unauthenticated saying %q", name, err, c.msg)
		}
	}
	// Created right before its first use, with room for a loaded machine:
	// a 1s token expired before this read under load.
	short, _ := sn.createToken(auth.RoleViewer, "3s")
	if err := read(short); err != nil {
		t.Fatalf("fresh short-lived token: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := read(short)
		if status.Code(err) == codes.Unauthenticated && strings.Contains(err.Error(), "expired") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("short-lived token still accepted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := admin.ListTokens(ctx, &pb.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var sawRevoked bool
	for _, i := range list.Tokens {
		if i.Id == viewerID && i.RevokedAt != "" && i.RevokedBy != "" {
			sawRevoked = true
		}
	}
	if !sawRevoked || len(list.Tokens) != 3 {
		t.Fatalf("ListTokens = %v", list.Tokens)
	}
	scanLogs(t, sn, []string{viewer, short})
}

// scanLogs fails if a secret (a token, the encryption or HMAC key) or
// personal data appears in the node's logs. The initial admin token
// must appear once, in the banner only.
func scanLogs(t *testing.T, sn *secureNode, secrets []string) {
	t.Helper()
	logs := sn.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	if sn.admin != "" {
		secrets = append(secrets, sn.admin)
	}
	if sn.wrote {
		if strings.Count(sn.banner.String(), sn.admin) != 1 {
			t.Errorf("the banner shows the admin token %d times", strings.Count(sn.banner.String(), sn.admin))
		}
	}
	for _, f := range []string{node.EncryptionKeyFile, node.HMACKeyFile} {
		if b, err := os.ReadFile(filepath.Join(sn.dir, f)); err == nil {
			secrets = append(secrets, strings.TrimSpace(string(b)))
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, probe := range []string{s, s[len(s)/2:]} {
			if strings.Contains(logs, probe) {
				t.Errorf("a secret leaked into the logs: %.12s…", probe)
			}
		}
	}
}

func TestEncryptionThroughTheAPI(t *testing.T) {
	sn := startSecure(t, t.TempDir(), nil)
	ctx := context.Background()
	ingest, _ := sn.createToken(auth.RoleIngest, "")
	viewer, _ := sn.createToken(auth.RoleViewer, "")
	comp, _ := sn.createToken(auth.RoleCompliance, "")
	r, err := pb.NewLedgerClient(sn.conn(ingest)).Append(ctx, &pb.AppendRequest{Event: seedEvent("alice@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) *pb.Entry {
		e, err := pb.NewLedgerClient(sn.conn(tok)).GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: r.Result.Index}})
		if err != nil {
			t.Fatal(err)
		}
		return e.Entry
	}
	for _, who := range []string{sn.admin, comp} {
		e := get(who)
		if e.Event.Actor.Id != "alice@example.com" || e.Event.Action.Metadata["password"] != "correct-horse-alice@example.com" {
			t.Errorf("privileged read: %v", e.Event)
		}
	}
	e := get(viewer)
	if e.Event.Actor.Id != "alice@example.com" || e.Event.Actor.Ip != "198.51.100.23" {
		t.Errorf("viewer reads personal fields as %v", e.Event.Actor)
	}
	if e.Event.Action.Metadata["password"] != fieldcrypt.Encrypted || e.Event.Action.Metadata["format"] != "csv" {
		t.Errorf("viewer reads metadata %v", e.Event.Action.Metadata)
	}
	for _, p := range []string{"alice@example.com", "198.51.100.23", "sess-alice", "correct-horse"} {
		if bytes.Contains(e.Leaf, []byte(p)) {
			t.Errorf("the leaf holds plaintext %q", p)
		}
	}
	if h := merkle.LeafHash(e.Leaf); !bytes.Equal(h[:], r.Result.LeafHash) {
		t.Error("the leaf returned is not the one appended")
	}
	if e.Leaf[0] != ledger.LeafFormatV2 {
		t.Errorf("leaf of format %d: the searchable personal values are not in binary", e.Leaf[0])
	}
	// Queries find a subject by its (encrypted) actor id, after a key
	// rotation too, and show it decrypted.
	if _, err := pb.NewAdminClient(sn.conn(sn.admin)).RotateKey(ctx, &pb.RotateKeyRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewLedgerClient(sn.conn(ingest)).Append(ctx, &pb.AppendRequest{Event: seedEvent("alice@example.com")}); err != nil {
		t.Fatal(err)
	}
	q, err := pb.NewQueryClient(sn.conn(viewer)).Query(ctx, &pb.QueryRequest{Filter: &pb.QueryFilter{ActorId: "alice@example.com"}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Entries) != 2 {
		t.Fatalf("query by actor found %d entries, want 2", len(q.Entries))
	}
	for _, e := range q.Entries {
		if e.Event.Actor.Id != "alice@example.com" || e.Event.Action.Metadata["password"] != fieldcrypt.Encrypted {
			t.Errorf("query result %v", e.Event)
		}
	}
	// The same over HTTP; then no leaf at all — events and the
	// self-audit events of these reads and searches — holds the
	// subject's identity or any other personal value in clear.
	hq, _ := http.NewRequest("GET", "http://"+sn.n.HTTPAddr()+"/api/audit/events?actorId=alice%40example.com&actorIp=198.51.100.23", nil)
	hq.Header.Set("Authorization", "Bearer "+viewer)
	hr, err := http.DefaultClient.Do(hq)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if hr.StatusCode != 200 || strings.Count(string(hb), `"alice@example.com"`) != 2 {
		t.Fatalf("HTTP query by actor: %d %s", hr.StatusCode, hb)
	}
	if err := sn.n.SelfAudit().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := sn.n.Ledger().Store()
	for i := uint64(0); i < st.State().Size; i++ {
		leaf, err := st.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"alice@example.com", "alice%40example.com", "198.51.100.23", "sess-alice", "correct-horse"} {
			if bytes.Contains(leaf, []byte(p)) {
				t.Errorf("leaf %d holds %q in clear", i, p)
			}
		}
	}
	scanLogs(t, sn, []string{ingest, viewer, comp, "correct-horse", "alice@example.com"})
}

func TestSelfAudit(t *testing.T) {
	sn := startSecure(t, t.TempDir(), nil)
	ctx := context.Background()
	if _, err := pb.NewLedgerClient(sn.conn(sn.admin)).Append(ctx, &pb.AppendRequest{Event: seedEvent("u1")}); err != nil {
		t.Fatal(err)
	}
	viewer, viewerID := sn.createToken(auth.RoleViewer, "")
	vc := sn.conn(viewer)
	if _, err := pb.NewLedgerClient(vc).GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: 0, Count: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewAdminClient(vc).ListTokens(ctx, &pb.ListTokensRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer ListTokens: %v", err)
	}
	if err := sn.n.SelfAudit().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Only the append of the test and the token creation... and no
	// self-audit of appends.
	res, err := pb.NewLedgerClient(sn.conn(sn.admin)).GetEntries(ctx, &pb.GetEntriesRequest{Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ action, resource, result, actor string }
	var got []seen
	for _, e := range res.Entries {
		if e.Event.Context.GetApplication() == "ledgerd" {
			got = append(got, seen{e.Event.Action.Type, e.Event.Action.Resource, e.Event.Action.Result, e.Event.Actor.Id})
		}
	}
	want := []seen{
		{auth.AuditTokens, "token", "success", "token:" + tokenIDOf(t, sn.admin)},
		{auth.AuditAccess, "entries", "success", "token:" + viewerID},
		{auth.AuditTokens, "tokens", "denied", "token:" + viewerID},
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("self-audit event %+v missing; have %+v", w, got)
		}
	}
	for _, g := range got {
		if g.action == "" || strings.Contains(g.action, "append") {
			t.Errorf("unexpected self-audit event %+v", g)
		}
	}
	if s := sn.n.SelfAudit().Stats(); s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("self-audit stats %+v", s)
	}
	scanLogs(t, sn, []string{viewer})
}

func tokenIDOf(t *testing.T, tok string) string {
	p, err := auth.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// TestErasure: after an erasure every encrypted field of the subject
// reads "[erased]", other subjects are untouched, every inclusion and
// consistency proof still verifies and ledgerctl verify-log passes; it
// survives a restart.
func TestErasure(t *testing.T) {
	dir := t.TempDir()
	sn := startSecure(t, dir, nil)
	ctx := context.Background()
	lc := pb.NewLedgerClient(sn.conn(sn.admin))
	var erinIdx, otherIdx []uint64
	for i := range 4 {
		r, err := lc.AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{seedEvent("erin@example.com"), seedEvent(fmt.Sprintf("other-%d", i))}, WaitCheckpoint: true})
		if err != nil {
			t.Fatal(err)
		}
		erinIdx = append(erinIdx, r.Results[0].Index)
		otherIdx = append(otherIdx, r.Results[1].Index)
	}
	before, err := lc.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	er, err := pb.NewAdminClient(sn.conn(sn.admin)).Erase(ctx, &pb.EraseRequest{Subject: "erin@example.com", Reason: "GDPR art. 17 request #42"})
	if err != nil {
		t.Fatal(err)
	}
	if er.KeysDestroyed != 1 {
		t.Fatalf("keys destroyed: %d", er.KeysDestroyed)
	}
	if _, err := pb.NewAdminClient(sn.conn(sn.admin)).Erase(ctx, &pb.EraseRequest{Subject: "erin@example.com"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("erase without a reason: %v", err)
	}
	check := func(sn *secureNode) {
		t.Helper()
		lc := pb.NewLedgerClient(sn.conn(sn.admin))
		for _, ix := range erinIdx {
			e, err := lc.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: ix}})
			if err != nil {
				t.Fatal(err)
			}
			a := e.Entry.Event.Actor
			if a.Id != fieldcrypt.Erased || a.Ip != fieldcrypt.Erased || a.Session != fieldcrypt.Erased || e.Entry.Event.Action.Metadata["password"] != fieldcrypt.Erased {
				t.Errorf("erased subject's entry %d reads %v %v", ix, a, e.Entry.Event.Action.Metadata)
			}
			if e.Entry.Event.Action.Resource != "user_profile" {
				t.Errorf("entry %d lost its resource", ix)
			}
		}
		for i, ix := range otherIdx {
			e, err := lc.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: ix}})
			if err != nil {
				t.Fatal(err)
			}
			if e.Entry.Event.Actor.Id != fmt.Sprintf("other-%d", i) {
				t.Errorf("another subject's entry %d reads %v", ix, e.Entry.Event.Actor)
			}
		}
		ev, err := lc.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: er.Event.Index}})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Entry.Event.Action.Type != "erase_data_subject" || ev.Entry.Event.Action.Metadata["reason"] != "GDPR art. 17 request #42" || bytes.Contains(ev.Entry.Leaf, []byte("erin")) {
			t.Errorf("erasure event %v", ev.Entry.Event)
		}
		// Proofs: every entry against the latest checkpoint, and the
		// checkpoint before the erasure against it.
		cp, err := lc.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		root, _ := merkle.HashFromBytes(cp.Checkpoint.RootHash)
		for _, ix := range append(slices.Clone(erinIdx), otherIdx...) {
			p, err := lc.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_Index{Index: ix}, TreeSize: cp.Checkpoint.Size})
			if err != nil {
				t.Fatal(err)
			}
			lh, _ := merkle.HashFromBytes(p.Proof.LeafHash)
			hs := make([]merkle.Hash, len(p.Proof.Hashes))
			for i, h := range p.Proof.Hashes {
				hs[i], _ = merkle.HashFromBytes(h)
			}
			if err := merkle.VerifyInclusion(lh, ix, cp.Checkpoint.Size, hs, root); err != nil {
				t.Errorf("inclusion of %d after erasure: %v", ix, err)
			}
		}
		c, err := lc.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: before.Checkpoint.Size, ToSize: cp.Checkpoint.Size})
		if err != nil {
			t.Fatal(err)
		}
		hs := make([]merkle.Hash, len(c.Proof.Hashes))
		for i, h := range c.Proof.Hashes {
			hs[i], _ = merkle.HashFromBytes(h)
		}
		r1, _ := merkle.HashFromBytes(before.Checkpoint.RootHash)
		if err := merkle.VerifyConsistency(before.Checkpoint.Size, cp.Checkpoint.Size, hs, r1, root); err != nil {
			t.Errorf("consistency across the erasure: %v", err)
		}
		var out, errb bytes.Buffer
		hmacFile := filepath.Join(sn.dir, node.HMACKeyFile)
		if code := ctl.Main(ctx, []string{"--addr", sn.n.GRPCAddr(), "--token", sn.admin, "verify-log", "--key", sn.n.Keys().VerifierKey, "--hmac-key", hmacFile}, nil, &out, &errb); code != ctl.ExitOK {
			t.Errorf("verify-log after erasure: exit %d\n%s%s", code, out.String(), errb.String())
		}
	}
	check(sn)
	scanLogs(t, sn, []string{"erin@example.com"})
	sn.stop()
	check(startSecure(t, dir, nil))
}

func TestPlaintextOffLoopbackRefused(t *testing.T) {
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr = "0.0.0.0:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Security.Banner = io.Discard
	_, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("plaintext on 0.0.0.0: %v", err)
	}
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Security.Auth.AnonymousRole = auth.RoleAdmin
	cfg.HTTPAddr = ":0"
	cfg.Security.Insecure = true
	if _, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "anonymousRole") {
		t.Fatalf("anonymousRole off loopback: %v", err)
	}
}

// pki is a throwaway CA that issues certificates into files.
type pki struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newPKI(t *testing.T, name string) *pki {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	p := &pki{t: t, dir: t.TempDir(), cert: c, key: key}
	p.file = p.write(name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue returns cert and key files for cn (a server certificate for
// 127.0.0.1 when server is true).
func (p *pki) issue(cn string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile = p.write(cn+".pem", "CERTIFICATE", der)
	keyFile = p.write(cn+".key", "EC PRIVATE KEY", kder)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	return certFile, keyFile, pair
}

func TestMutualTLS(t *testing.T) {
	ca, wrong := newPKI(t, "ledger-ca"), newPKI(t, "evil-ca")
	srvCert, srvKey, _ := ca.issue("ledgerd", true)
	_, _, good := ca.issue("ingest-svc", false)
	_, _, stranger := ca.issue("stranger", false)
	_, _, forged := wrong.issue("ingest-svc", false)
	sn := startSecure(t, t.TempDir(), func(c *node.Config) {
		c.GRPCAddr = "127.0.0.1:0"
		c.Security.TLS = auth.TLSFiles{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.file}
		c.Security.Auth.ClientCertificates = []auth.CertRule{{Match: "cn:ingest-svc", Roles: []auth.Role{auth.RoleIngest}}}
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dial := func(cert *tls.Certificate, token string) *grpc.ClientConn {
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerCredentials(token, true)))
		}
		cc, err := grpc.NewClient(sn.n.GRPCAddr(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctx := context.Background()
	appendWith := func(cc *grpc.ClientConn) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := pb.NewLedgerClient(cc).Append(cctx, &pb.AppendRequest{Event: seedEvent("svc")})
		return err
	}

	goodCC := dial(&good, "")
	if err := appendWith(goodCC); err != nil {
		t.Fatalf("valid client certificate: %v", err)
	}
	who, err := pb.NewAdminClient(goodCC).WhoAmI(ctx, &pb.WhoAmIRequest{})
	if err != nil || who.Id != "cert:cn:ingest-svc" || who.Kind != "certificate" || !slices.Equal(who.Roles, []string{"ingest"}) {
		t.Fatalf("WhoAmI with a certificate: %v, %v", who, err)
	}
	if _, err := pb.NewLedgerClient(goodCC).GetEntries(ctx, &pb.GetEntriesRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ingest certificate reads entries: %v", err)
	}
	if err := appendWith(dial(&forged, "")); err == nil || status.Code(err) == codes.OK {
		t.Fatal("a certificate of another CA was accepted")
	}
	if err := appendWith(dial(&stranger, "")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unmapped certificate: %v", err)
	}
	if err := appendWith(dial(nil, "")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("TLS without credentials: %v", err)
	}
	if err := appendWith(dial(nil, sn.admin)); err != nil {
		t.Fatalf("token over TLS: %v", err)
	}
	if err := appendWith(sn.conn(sn.admin)); err == nil {
		t.Fatal("plaintext client talked to a TLS server")
	}
	scanLogs(t, sn, nil)
}
