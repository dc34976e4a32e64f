package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

type recordedAccess struct {
	p *Principal
	a Access
}

type fakeAuditor struct {
	mu  sync.Mutex
	got []recordedAccess
}

func (f *fakeAuditor) Record(p *Principal, a Access) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, recordedAccess{p, a})
}

func incoming(token string, chain ...*x509.Certificate) context.Context {
	ctx := context.Background()
	if token != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
	}
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}}
	if len(chain) > 0 {
		p.AuthInfo = credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{chain}}}
	}
	return peer.NewContext(ctx, p)
}

func TestGuardUnary(t *testing.T) {
	kv := newMemKV()
	tokens := NewTokens(kv, kv, nil)
	viewer, _, _ := tokens.Create(context.Background(), RoleViewer, "v", 0, "t")
	a, _ := NewAuthenticator(tokens, Config{}, "")
	audit := &fakeAuditor{}
	var logs bytes.Buffer
	g := NewGuard(a, DefaultMethods(), audit, slog.New(slog.NewTextHandler(&logs, nil)))
	clusterRoot := &x509.Certificate{Raw: []byte("cluster-root"), Subject: pkix.Name{CommonName: "cluster"}}
	apiRoot := &x509.Certificate{Raw: []byte("api-root"), Subject: pkix.Name{CommonName: "api"}}
	g.SetInternalCheck(func(c Credentials) error {
		if len(c.Chain) == 0 || c.Chain[len(c.Chain)-1].Equal(clusterRoot) {
			return nil
		}
		return fmt.Errorf("%w: not a cluster certificate", ErrPermissionDenied)
	})
	unary := g.UnaryInterceptor()
	var sawPrincipal *Principal
	handler := func(ctx context.Context, req any) (any, error) { sawPrincipal = FromContext(ctx); return "ok", nil }
	call := func(ctx context.Context, method string, req any) error {
		sawPrincipal = nil
		_, err := unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		return err
	}
	leaf := &x509.Certificate{Raw: []byte("leaf"), Subject: pkix.Name{CommonName: "svc"}}

	cases := []struct {
		name   string
		ctx    context.Context
		method string
		req    any
		code   codes.Code
	}{
		{"viewer reads", incoming(viewer.String()), "/ledger.v1.Ledger/GetEntries", &pb.GetEntriesRequest{StartIndex: 3}, codes.OK},
		{"viewer appends", incoming(viewer.String()), "/ledger.v1.Ledger/Append", &pb.AppendRequest{}, codes.PermissionDenied},
		{"anonymous reads", incoming(""), "/ledger.v1.Ledger/GetEntries", &pb.GetEntriesRequest{}, codes.Unauthenticated},
		{"anonymous health", incoming(""), "/grpc.health.v1.Health/Check", nil, codes.OK},
		{"unknown method", incoming(viewer.String()), "/ledger.v1.Secret/Dump", nil, codes.PermissionDenied},
		{"internal, no certificate", incoming(""), "/ledger.v1.Cluster/ForwardKV", &pb.ClusterForwardKVRequest{}, codes.OK},
		{"internal, cluster certificate", incoming("", leaf, clusterRoot), "/ledger.v1.Cluster/ForwardKV", &pb.ClusterForwardKVRequest{}, codes.OK},
		{"internal, API client certificate", incoming("", leaf, apiRoot), "/ledger.v1.Cluster/ForwardKV", &pb.ClusterForwardKVRequest{}, codes.PermissionDenied},
	}
	for _, c := range cases {
		if err := call(c.ctx, c.method, c.req); status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
		}
	}
	// The handler sees the principal; self-audit got the read (with what
	// was read) and the denied append, not the anonymous refusal.
	if err := call(incoming(viewer.String()), "/ledger.v1.Ledger/GetEntry", &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: 7}}); err != nil || sawPrincipal == nil || sawPrincipal.ID != "token:"+viewer.ID {
		t.Fatalf("principal in the handler: %+v, %v", sawPrincipal, err)
	}
	var lines []string
	for _, r := range audit.got {
		lines = append(lines, fmt.Sprintf("%s %s %s %s %q", r.p.ID, r.a.Action, r.a.Resource, r.a.Result, r.a.ResourceID))
	}
	want := []string{
		"token:" + viewer.ID + ` access_audit_data entries success "from 3, at most 100"`,
		"token:" + viewer.ID + ` access_audit_data /ledger.v1.Ledger/Append denied ""`,
		"token:" + viewer.ID + ` access_audit_data entry success "index 7"`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("self-audit:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(logs.String(), viewer.String()) {
		t.Fatal("the token is in the log")
	}
}

func TestGuardHTTP(t *testing.T) {
	kv := newMemKV()
	tokens := NewTokens(kv, kv, nil)
	ingest, _, _ := tokens.Create(context.Background(), RoleIngest, "", 0, "t")
	a, _ := NewAuthenticator(tokens, Config{PublicProofs: true}, "")
	audit := &fakeAuditor{}
	g := NewGuard(a, nil, audit, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	rules := map[string]Rule{
		"POST /api/audit/events":    {Perm: PermAppend},
		"GET /api/audit/events":     {Perm: PermQuery, Audit: AuditQuery, Resource: "events"},
		"GET /api/audit/checkpoint": {Perm: PermProofs},
		"GET /health":               {Public: true},
	}
	routes := func(r *http.Request) (Rule, bool) { rule, ok := rules[r.Method+" "+r.URL.Path]; return rule, ok }
	h := g.Middleware(routes, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if FromContext(r.Context()) == nil && r.URL.Path != "/health" {
			t.Error("no principal in the handler")
		}
		w.WriteHeader(http.StatusOK)
	}))
	do := func(method, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, c := range []struct {
		method, path, token string
		code                int
	}{
		{"POST", "/api/audit/events", ingest.String(), 200},
		{"GET", "/api/audit/events", ingest.String(), 403},
		{"GET", "/api/audit/events", "", 401},
		{"GET", "/api/audit/events", "garbage", 401},
		{"GET", "/api/audit/checkpoint", "", 200}, // public proofs
		{"GET", "/health", "", 200},
		{"DELETE", "/api/audit/events", ingest.String(), 403}, // no rule: fail closed
	} {
		rec := do(c.method, c.path, c.token)
		if rec.Code != c.code {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, rec.Code, c.code, rec.Body)
		}
		if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", c.method, c.path)
		}
		if rec.Code == 403 && c.path == "/api/audit/events" && c.method == "GET" && !strings.Contains(rec.Body.String(), `lacks permission \"query\"`) {
			t.Errorf("403 does not name the permission: %s", rec.Body)
		}
	}
	if len(audit.got) != 1 || audit.got[0].a.Result != "denied" || audit.got[0].a.Action != AuditQuery {
		t.Fatalf("self-audit: %+v", audit.got)
	}
	if !errors.Is(toStatusErr(), ErrPermissionDenied) {
		t.Fatal("sentinel")
	}
}

func toStatusErr() error { return &DeniedError{Principal: "x", Missing: PermRead} }

func TestRedaction(t *testing.T) {
	got := RedactQuery("actorId=alice%40example.com&resource=user_profile&actorIp=10.0.0.1&limit=5&requestId=req-1&bogus=x")
	want := "actorId=%5Bredacted%5D&actorIp=%5Bredacted%5D&bogus=%5Bredacted%5D&limit=5&requestId=%5Bredacted%5D&resource=user_profile"
	if got != want {
		t.Fatalf("RedactQuery = %q\nwant %q", got, want)
	}
	f := redactFilter(&pb.QueryFilter{ActorId: "alice", ActorIp: "10.0.0.1", Resource: "doc", ResourceId: "user-9"})
	if strings.Contains(f, "alice") || strings.Contains(f, "10.0.0.1") || strings.Contains(f, "user-9") || !strings.Contains(f, `resource="doc"`) {
		t.Fatalf("redactFilter = %s", f)
	}
	if RedactQuery("%zz") != "[unparseable query]" || RedactQuery("") != "" {
		t.Fatal("edge cases")
	}
}
