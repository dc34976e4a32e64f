package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/auditledger/ledgerd/api"
	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/feed/feedtest"
	"github.com/auditledger/ledgerd/ledger"
)

// appenderFunc is an api.Appender from a function.
type appenderFunc func(ctx context.Context, events []ledger.Event) ([]ledger.AppendResult, error)

func (f appenderFunc) Append(ctx context.Context, events []ledger.Event) ([]ledger.AppendResult, error) {
	return f(ctx, events)
}

const okEvent = `{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"success"}}`

// TestHTTPErrorClasses: errors from the write path reach HTTP clients
// with the status and code of the shared table; internal detail stays
// in the log.
func TestHTTPErrorClasses(t *testing.T) {
	l := feedtest.New(t)
	var fail error
	svc := api.NewLedgerService(api.LedgerOptions{Ledger: l.Ledger, Appender: appenderFunc(func(context.Context, []ledger.Event) ([]ledger.AppendResult, error) {
		return nil, fail
	})})
	srv := httptest.NewServer(api.NewHTTPHandler(api.HTTPOptions{Ledger: svc}))
	defer srv.Close()
	for _, c := range []struct {
		err    error
		status int
		code   string
		field  string
	}{
		{ledger.ErrPushback, http.StatusTooManyRequests, "resource_exhausted", ""},
		{fmt.Errorf("queue: %w", ledger.ErrPushback), http.StatusTooManyRequests, "resource_exhausted", ""},
		{errors.New("disk on fire under /var/secret"), http.StatusInternalServerError, "internal", ""},
		{fmt.Errorf("entry 5: %w", ledger.ErrCorrupt), http.StatusInternalServerError, "data_loss", ""},
		{ledger.ErrNotLeader, http.StatusServiceUnavailable, "unavailable", ""},
		{ledger.ErrClosed, http.StatusServiceUnavailable, "unavailable", ""},
		{fmt.Errorf("%w: batch too big", ledger.ErrTooLarge), http.StatusRequestEntityTooLarge, "too_large", ""},
		{&ledger.FieldError{Field: "actor.id", Reason: "required"}, http.StatusBadRequest, "invalid_argument", "actor.id"},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, "deadline_exceeded", ""},
	} {
		fail = c.err
		resp, err := http.Post(srv.URL+"/api/audit/events", "application/json", strings.NewReader(okEvent))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message, Field string }
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.status || body.Error.Code != c.code || body.Error.Field != c.field {
			t.Errorf("%v: %d %+v, want %d %s", c.err, resp.StatusCode, body.Error, c.status, c.code)
		}
		if strings.Contains(body.Error.Message, "secret") || strings.Contains(body.Error.Message, "entry 5") {
			t.Errorf("%v: internal detail in the answer: %q", c.err, body.Error.Message)
		}
	}
}

// TestHTTPRouteRules: every route has an authorization rule; health and
// metrics are public, reads are self-audited, unknown routes serve
// nothing and need none.
func TestHTTPRouteRules(t *testing.T) {
	for _, c := range []struct {
		method, path string
		perm         auth.Permission
		public       bool
		audit        string
	}{
		{"POST", "/api/audit/events", auth.PermAppend, false, ""},
		{"POST", "/api/audit/events/batch", auth.PermAppend, false, ""},
		{"GET", "/api/audit/events?actorId=u", auth.PermQuery, false, auth.AuditQuery},
		{"GET", "/api/audit/events/evt-1", auth.PermRead, false, auth.AuditAccess},
		{"GET", "/api/audit/checkpoint", auth.PermProofs, false, ""},
		{"GET", "/api/audit/proofs/inclusion?index=1", auth.PermProofs, false, ""},
		{"GET", "/api/audit/proofs/consistency?from=1", auth.PermProofs, false, ""},
		{"GET", "/health", 0, true, ""},
		{"HEAD", "/health/database", 0, true, ""},
		{"GET", "/metrics", 0, true, ""},
		{"GET", "/nothing", 0, true, ""},
		{"DELETE", "/api/audit/events", 0, true, ""},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		rule, ok := api.HTTPRoute(r)
		if !ok || rule.Perm != c.perm || rule.Public != c.public || rule.Audit != c.audit {
			t.Errorf("%s %s: %+v %v", c.method, c.path, rule, ok)
		}
	}
}

// TestHTTPMiddlewareWraps: the one middleware hook sees every request.
func TestHTTPMiddlewareWraps(t *testing.T) {
	l := feedtest.New(t)
	svc := api.NewLedgerService(api.LedgerOptions{Ledger: l.Ledger})
	seen := 0
	h := api.NewHTTPHandler(api.HTTPOptions{Ledger: svc, Middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen++
			if r.Header.Get("Authorization") == "" {
				api.WriteHTTPError(w, r, http.StatusUnauthorized, "unauthenticated", "no token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	for _, p := range []string{"/health", "/api/audit/events", "/nowhere"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusUnauthorized || !bytes.Contains(rec.Body.Bytes(), []byte(`"code":"unauthenticated"`)) {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	if seen != 3 {
		t.Fatalf("middleware saw %d requests, want 3", seen)
	}
}
