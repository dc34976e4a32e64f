package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/auditledger/ledgerd/auth"
	"github.com/auditledger/ledgerd/ledger"
)

// The HTTP/JSON API: the audit service's REST paths (seed-compatible),
// health and metrics. Handlers call the same functions as the gRPC
// services, so both faces behave alike; errors are classified by the
// same table (errors.go) and written as
//
//	{"error":{"code":"invalid_argument","message":"…","field":"…"}}

// ErrConflict reports an event id that is already in the log with other
// content: the client reused an id for a different event. Nothing was
// written for that event.
var ErrConflict = errors.New("api: event id already used for another event")

func init() {
	RegisterClass(ErrConflict, Class{codes.AlreadyExists, http.StatusConflict, "already_exists", true})
}

// Body limits: one event's leaf is at most 64 KiB; a batch's leaves at
// most 16 MiB, and JSON is larger than the leaf encoding.
const (
	maxEventBody = 1 << 20
	maxBatchBody = 48 << 20
)

// HTTPOptions configure the HTTP API. Ledger is required.
type HTTPOptions struct {
	Ledger *LedgerService
	// Query answers GET /api/audit/events; nil: 503.
	Query *QueryService
	// Health answers /health/...; nil: only /health (liveness).
	Health *Health
	// Metrics instruments requests; Gatherer serves /metrics. Either may
	// be nil.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	// Middleware wraps every route (authentication, authorization,
	// self-audit); HTTPRoute tells it each request's rule.
	Middleware func(http.Handler) http.Handler
	Logger     *slog.Logger
}

// route is one HTTP route: its Go 1.22 mux pattern, its authorization
// rule and the name metrics use.
type route struct {
	pattern string
	rule    auth.Rule
	handle  func(*httpAPI, http.ResponseWriter, *http.Request)
}

// routes is the single table of the HTTP API.
var routes = []route{
	{"POST /api/audit/events", auth.Rule{Perm: auth.PermAppend}, (*httpAPI).postEvent},
	{"POST /api/audit/events/batch", auth.Rule{Perm: auth.PermAppend}, (*httpAPI).postBatch},
	{"GET /api/audit/events", auth.Rule{Perm: auth.PermQuery, Audit: auth.AuditQuery, Resource: "events", Describe: describeHTTPQuery}, (*httpAPI).getEvents},
	{"GET /api/audit/events/{id}", auth.Rule{Perm: auth.PermRead, Audit: auth.AuditAccess, Resource: "entry", Describe: describeHTTPEntry}, (*httpAPI).getEvent},
	{"GET /api/audit/checkpoint", auth.Rule{Perm: auth.PermProofs}, (*httpAPI).getCheckpoint},
	{"GET /api/audit/proofs/inclusion", auth.Rule{Perm: auth.PermProofs}, (*httpAPI).getInclusion},
	{"GET /api/audit/proofs/consistency", auth.Rule{Perm: auth.PermProofs}, (*httpAPI).getConsistency},
	{"GET /health", auth.Rule{Public: true}, (*httpAPI).health},
	{"GET /health/detailed", auth.Rule{Public: true}, (*httpAPI).healthDetailed},
	{"GET /health/database", auth.Rule{Public: true}, (*httpAPI).healthDatabase},
	{"GET /health/dependencies", auth.Rule{Public: true}, (*httpAPI).healthDependencies},
	{"GET /metrics", auth.Rule{Public: true}, (*httpAPI).metrics},
}

// routeMux resolves a request to its route pattern ("" when none).
var routeMux = func() *http.ServeMux {
	m := http.NewServeMux()
	nop := func(http.ResponseWriter, *http.Request) {}
	for _, r := range routes {
		m.HandleFunc(r.pattern, nop)
	}
	return m
}()

var rules = func() map[string]auth.Rule {
	m := map[string]auth.Rule{}
	for _, r := range routes {
		m[r.pattern] = r.rule
	}
	return m
}()

// HTTPRoute is the auth.Routes of the HTTP API: the rule of the route a
// request goes to. A request that matches no route gets a public rule:
// it is answered 404 or 405 and serves nothing.
func HTTPRoute(r *http.Request) (auth.Rule, bool) {
	if rule, ok := rules[routePattern(r)]; ok {
		return rule, true
	}
	return auth.Rule{Public: true}, true
}

// routePattern is the pattern r matches ("GET /api/audit/events/{id}"),
// or "" for none: the label metrics use, never the raw path.
func routePattern(r *http.Request) string {
	_, p := routeMux.Handler(r)
	return p
}

var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// notRouted answers a request no route matches: 405 with Allow when the
// path has routes for other methods, else 404.
func notRouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if routePattern(probe) != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeHTTPError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), "")
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeHTTPError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")), "")
}

type httpAPI struct {
	o   HTTPOptions
	log *slog.Logger
}

// NewHTTPHandler returns the HTTP API.
func NewHTTPHandler(o HTTPOptions) http.Handler {
	a := &httpAPI{o: o, log: o.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		h := r.handle
		mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) { h(a, w, req) })
	}
	mux.HandleFunc("/", notRouted)
	var h http.Handler = mux
	if o.Middleware != nil {
		h = o.Middleware(h)
	}
	if o.Metrics != nil {
		h = o.Metrics.httpMiddleware(h)
	}
	return h
}

// WriteHTTPError is the auth.HTTPError of the HTTP API: refusals look
// like every other error.
func WriteHTTPError(w http.ResponseWriter, _ *http.Request, status int, name, message string) {
	writeHTTPError(w, status, name, message, "")
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeHTTPError(w http.ResponseWriter, status int, code, message, field string) {
	writeJSON(w, status, errorBody{errorDetail{code, message, field}})
}

// fail writes err classified like gRPC errors are; internal details go
// to the log only.
func (a *httpAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	c := Classify(err)
	if !c.Public {
		a.log.Error("request failed", "route", r.Pattern, "err", err)
	}
	field := ""
	var fe *ledger.FieldError
	var ce *conflictError
	switch {
	case errors.As(err, &fe):
		field = fe.Field
	case errors.As(err, &ce):
		field = ce.field
	}
	status := c.HTTP
	if status == 499 { // the client went away; nobody reads this
		status = http.StatusBadRequest
	}
	writeHTTPError(w, status, c.Name, c.Message(err), field)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// readJSONBody checks the content type and reads at most limit bytes.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errUnsupportedMedia{ct}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, fmt.Errorf("%w: request body is over the limit of %d bytes", ledger.ErrTooLarge, limit)
	case err != nil:
		return nil, &ledger.FieldError{Field: "body", Reason: "could not be read: " + err.Error()}
	case len(b) == 0:
		return nil, &ledger.FieldError{Field: "body", Reason: "empty; send a JSON object"}
	}
	return b, nil
}

type errUnsupportedMedia struct{ ct string }

func (e errUnsupportedMedia) Error() string {
	return fmt.Sprintf("content type %q is not supported; send application/json", e.ct)
}

func init() {
	RegisterClass(errUnsupportedMedia{}, Class{codes.InvalidArgument, http.StatusUnsupportedMediaType, "unsupported_media_type", true})
}

// Is makes every errUnsupportedMedia match the registered sentinel.
func (errUnsupportedMedia) Is(target error) bool {
	_, ok := target.(errUnsupportedMedia)
	return ok
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)

// jsonFieldError turns a JSON parse error into a FieldError naming the
// offending field where the message has it (prefix: "events[3]." etc.).
func jsonFieldError(prefix string, err error) error {
	msg := err.Error()
	var fe *ledger.FieldError
	if errors.As(err, &fe) {
		return &ledger.FieldError{Field: prefix + fe.Field, Reason: fe.Reason}
	}
	msg = strings.TrimPrefix(msg, ledger.ErrInvalid.Error()+": ")
	field := strings.TrimSuffix(prefix, ".")
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		field = prefix + m[1]
		msg += " (unknown fields are rejected so that a misspelt field never drops audit data silently)"
	}
	if field == "" {
		field = "body"
	}
	return &ledger.FieldError{Field: field, Reason: msg}
}

func (a *httpAPI) metrics(w http.ResponseWriter, r *http.Request) {
	if a.o.Gatherer == nil {
		writeHTTPError(w, http.StatusNotFound, "not_found", "metrics are not enabled", "")
		return
	}
	promhttp.HandlerFor(a.o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{a.log}}).ServeHTTP(w, r)
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "err", fmt.Sprint(v...)) }
