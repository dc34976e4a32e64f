package node_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/fieldcrypt"
)

// httpAllowed is the HTTP side of the specification (issue 6): which
// callers may use each route. Public routes admit everyone.
var httpAllowed = map[string][]string{
	"POST /api/audit/events":            {"ingest", "audit_admin"},
	"POST /api/audit/events/batch":      {"ingest", "audit_admin"},
	"GET /api/audit/events":             {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer"},
	"GET /api/audit/events/{id}":        {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer"},
	"GET /api/audit/checkpoint":         {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"GET /api/audit/proofs/inclusion":   {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"GET /api/audit/proofs/consistency": {"audit_viewer", "audit_analyst", "audit_admin", "compliance_officer", "auditor"},
	"GET /health":                       nil,
	"GET /health/detailed":              nil,
	"GET /health/database":              nil,
	"GET /health/dependencies":          nil,
	"GET /metrics":                      nil,
}

func TestRoleMatrixHTTP(t *testing.T) {
	sn := startSecure(t, t.TempDir(), nil)
	ctx := context.Background()
	r, err := pb.NewLedgerClient(sn.conn(sn.admin)).AppendBatch(ctx, &pb.AppendBatchRequest{Events: []*pb.Event{seedEvent("h1"), seedEvent("h2")}, WaitCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Results[0].Id
	tokens := map[string]string{"anonymous": ""}
	for _, role := range auth.Roles() {
		tokens[string(role)], _ = sn.createToken(role, "")
	}
	base := "http://" + sn.n.HTTPAddr()
	event := `{"actor":{"id":"http-user","type":"user"},"action":{"type":"login","resource":"app","result":"success"}}`
	requests := map[string]func() *http.Request{
		"POST /api/audit/events": func() *http.Request {
			q, _ := http.NewRequest("POST", base+"/api/audit/events", strings.NewReader(event))
			q.Header.Set("Content-Type", "application/json")
			return q
		},
		"POST /api/audit/events/batch": func() *http.Request {
			q, _ := http.NewRequest("POST", base+"/api/audit/events/batch", strings.NewReader(`{"events":[`+event+`]}`))
			q.Header.Set("Content-Type", "application/json")
			return q
		},
		"GET /api/audit/events":      func() *http.Request { q, _ := http.NewRequest("GET", base+"/api/audit/events?limit=2", nil); return q },
		"GET /api/audit/events/{id}": func() *http.Request { q, _ := http.NewRequest("GET", base+"/api/audit/events/"+id, nil); return q },
		"GET /api/audit/checkpoint":  func() *http.Request { q, _ := http.NewRequest("GET", base+"/api/audit/checkpoint", nil); return q },
		"GET /api/audit/proofs/inclusion": func() *http.Request {
			q, _ := http.NewRequest("GET", base+"/api/audit/proofs/inclusion?index=0", nil)
			return q
		},
		"GET /api/audit/proofs/consistency": func() *http.Request {
			q, _ := http.NewRequest("GET", base+"/api/audit/proofs/consistency?from=1", nil)
			return q
		},
		"GET /health":              func() *http.Request { q, _ := http.NewRequest("GET", base+"/health", nil); return q },
		"GET /health/detailed":     func() *http.Request { q, _ := http.NewRequest("GET", base+"/health/detailed", nil); return q },
		"GET /health/database":     func() *http.Request { q, _ := http.NewRequest("GET", base+"/health/database", nil); return q },
		"GET /health/dependencies": func() *http.Request { q, _ := http.NewRequest("GET", base+"/health/dependencies", nil); return q },
		"GET /metrics":             func() *http.Request { q, _ := http.NewRequest("GET", base+"/metrics", nil); return q },
	}
	if len(requests) != len(httpAllowed) {
		t.Fatalf("%d requests, %d specified", len(requests), len(httpAllowed))
	}
	for route, mk := range requests {
		public := httpAllowed[route] == nil
		for who, tok := range tokens {
			q := mk()
			if tok != "" {
				q.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(q)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := public || slices.Contains(httpAllowed[route], who)
			switch {
			case want && (resp.StatusCode == 401 || resp.StatusCode == 403):
				t.Errorf("%s as %s: %d %s, want allowed", route, who, resp.StatusCode, body)
			case want && resp.StatusCode >= 400:
				t.Errorf("%s as %s: %d %s", route, who, resp.StatusCode, body)
			case !want && who == "anonymous" && (resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == ""):
				t.Errorf("%s without credentials: %d %s, want 401 with WWW-Authenticate", route, resp.StatusCode, body)
			case !want && who != "anonymous" && (resp.StatusCode != 403 || !strings.Contains(string(body), "lacks permission")):
				t.Errorf("%s as %s: %d %s, want 403 naming the permission", route, who, resp.StatusCode, body)
			}
			if route == "GET /api/audit/events/{id}" && want && strings.Contains(string(body), "correct-horse") != (who == "audit_admin" || who == "compliance_officer") {
				t.Errorf("%s as %s: sensitive field shown wrongly: %s", route, who, body)
			}
		}
	}
	// A viewer's HTTP read masks sensitive fields and is self-audited.
	q := requests["GET /api/audit/events/{id}"]()
	q.Header.Set("Authorization", "Bearer "+tokens["audit_viewer"])
	resp, err := http.DefaultClient.Do(q)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), fieldcrypt.Encrypted) || !strings.Contains(string(body), `"h1"`) {
		t.Fatalf("viewer reads %s", body)
	}
	if err := sn.n.SelfAudit().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := pb.NewLedgerClient(sn.conn(sn.admin)).GetEntries(ctx, &pb.GetEntriesRequest{Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	viewerID := tokenIDOf(t, tokens["audit_viewer"])
	var found bool
	for _, e := range all.Entries {
		ev := e.Event
		if ev.Actor.Id == "token:"+viewerID && ev.Action.Type == auth.AuditAccess && ev.Action.Resource == "entry" && strings.HasPrefix(ev.Action.Metadata["method"], "GET /api/audit/events/") {
			found = true
		}
	}
	if !found {
		t.Fatal("the viewer's HTTP read is not in the self-audit")
	}
	scanLogs(t, sn, slices.Collect(func(yield func(string) bool) {
		for _, v := range tokens {
			if v != "" && !yield(v) {
				return
			}
		}
	}))
}
