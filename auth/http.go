package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Routes tells the HTTP middleware the rule of a request (matched by
// method and path); ok is false for a route with no rule, which is
// refused (fail closed).
type Routes func(r *http.Request) (rule Rule, ok bool)

// HTTPError writes an error response. The HTTP API passes its own, so
// refusals look like its other errors; nil writes
// {"error": name, "message": text}.
type HTTPError func(w http.ResponseWriter, r *http.Request, status int, name, message string)

// Middleware authenticates, authorizes and self-audits HTTP requests
// with the same rules and principals as the gRPC interceptors: a bearer
// token in the Authorization header, or a verified TLS client
// certificate. The handler finds the principal with FromContext.
func (g *Guard) Middleware(routes Routes, writeErr HTTPError, next http.Handler) http.Handler {
	if writeErr == nil {
		writeErr = defaultHTTPError
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		method := r.Method + " " + r.URL.Path
		rule, ok := routes(r)
		if !ok {
			g.log.Error("auth: refusing a route with no authorization rule", "route", method)
			writeErr(w, r, http.StatusForbidden, "permission_denied", "auth: no authorization rule for "+method)
			return
		}
		if rule.Public {
			next.ServeHTTP(w, r)
			return
		}
		var creds Credentials
		if h := r.Header.Get("Authorization"); h != "" {
			creds.HasBearer = true
			creds.Bearer, _ = BearerToken(h)
		}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			creds.Cert, creds.Chain = r.TLS.VerifiedChains[0][0], r.TLS.VerifiedChains[0]
		}
		p, err := g.authn.Authenticate(creds)
		if err == nil && !rule.Internal {
			err = p.Require(rule.Perm)
		}
		if err != nil {
			g.refused(p, rule, method, r.RemoteAddr, err)
			switch {
			case errors.Is(err, ErrUnauthenticated):
				w.Header().Set("WWW-Authenticate", `Bearer realm="ledgerd"`)
				writeErr(w, r, http.StatusUnauthorized, "unauthenticated", err.Error())
			case errors.Is(err, ErrPermissionDenied):
				writeErr(w, r, http.StatusForbidden, "permission_denied", err.Error())
			default:
				g.log.Error("auth: authenticating", "err", err)
				writeErr(w, r, http.StatusInternalServerError, "internal", "internal")
			}
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(WithPrincipal(r.Context(), p)))
		if g.audit != nil && rule.Audit != "" {
			a := Access{Action: rule.Audit, Resource: resourceOf(rule, method), Method: method, Result: "success",
				Duration: time.Since(start), RequestID: r.Header.Get("X-Request-Id"), Client: r.RemoteAddr}
			switch {
			case rec.status == http.StatusForbidden:
				a.Result = "denied"
			case rec.status >= 400:
				a.Result = "failure"
			}
			if rule.Describe != nil {
				a.ResourceID = rule.Describe(r)
			}
			g.audit.Record(p, a)
		}
	})
}

func defaultHTTPError(w http.ResponseWriter, _ *http.Request, status int, name, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": name, "message": message})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush passes streaming flushes through.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
