package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Access is one self-audited API call.
type Access struct {
	Action     string // AuditAccess, AuditTokens, ...
	Resource   string // Rule.Resource
	ResourceID string // Rule.Describe's answer
	Method     string // full gRPC method or "GET /path"
	Result     string // success, failure or denied
	Duration   time.Duration
	RequestID  string
	Client     string // the peer's address
}

// Auditor records self-audited calls (package selfaudit). Record must
// not block.
type Auditor interface {
	Record(p *Principal, a Access)
}

// Guard authenticates and authorizes every request, in one gRPC
// interceptor pair and one HTTP middleware, from one table of rules.
type Guard struct {
	authn    *Authenticator
	methods  Methods
	audit    Auditor
	log      *slog.Logger
	internal func(Credentials) error
}

// SetInternalCheck installs a check of callers of cluster-internal
// methods, run before the Cluster service's own (which accepts any
// verified client certificate): the node uses it to refuse API client
// certificates there when the API and the cluster trust different CAs.
// Call it before serving.
func (g *Guard) SetInternalCheck(f func(Credentials) error) { g.internal = f }

// NewGuard returns a guard; audit may be nil (no self-audit).
func NewGuard(a *Authenticator, methods Methods, audit Auditor, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{authn: a, methods: methods, audit: audit, log: log}
}

// Authenticator returns the guard's authenticator.
func (g *Guard) Authenticator() *Authenticator { return g.authn }

// grpcCredentials reads a bearer token from the "authorization"
// metadata and a verified client certificate from the TLS state.
func grpcCredentials(ctx context.Context) (Credentials, string) {
	var c Credentials
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			c.HasBearer = true
			c.Bearer, _ = BearerToken(v[0])
		}
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			addr = p.Addr.String()
		}
		if ch := verifiedChain(p.AuthInfo); ch != nil {
			c.Cert, c.Chain = ch[0], ch
		}
	}
	return c, addr
}

func verifiedChain(ai credentials.AuthInfo) []*x509.Certificate {
	ti, ok := ai.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0]
}

// admit authenticates the call and checks its rule. It returns the
// context carrying the principal.
func (g *Guard) admit(ctx context.Context, method string) (context.Context, *Principal, Rule, error) {
	rule, known := g.methods[method]
	if !known {
		g.log.Error("auth: refusing a method with no authorization rule", "method", method)
		return ctx, nil, rule, status.Errorf(codes.PermissionDenied, "auth: no authorization rule for %s", method)
	}
	if rule.Public {
		return ctx, nil, rule, nil
	}
	creds, addr := grpcCredentials(ctx)
	if rule.Internal {
		if g.internal != nil {
			if err := g.internal(creds); err != nil {
				g.log.Warn("auth: refused a cluster-internal call", "method", method, "peer", addr, "err", err.Error())
				return ctx, nil, rule, toStatus(err)
			}
		}
		anon := &Principal{ID: "anonymous", Kind: KindAnonymous}
		return WithPrincipal(ctx, anon), anon, rule, nil
	}
	p, err := g.authn.Authenticate(creds)
	if err == nil {
		err = p.Require(rule.Perm)
	}
	if err != nil {
		g.refused(p, rule, method, addr, err)
		return ctx, p, rule, toStatus(err)
	}
	return WithPrincipal(ctx, p), p, rule, nil
}

// refused logs a refusal and self-audits one that an authenticated
// caller ran into (refusals of anonymous callers are only logged: anyone
// could flood the ledger with them).
func (g *Guard) refused(p *Principal, rule Rule, method, addr string, err error) {
	g.log.Info("auth: refused", "method", method, "principal", p.String(), "peer", addr, "err", err.Error())
	if g.audit != nil && p != nil && !p.Anonymous() && errors.Is(err, ErrPermissionDenied) {
		action := rule.Audit
		if action == "" {
			action = AuditAccess
		}
		g.audit.Record(p, Access{Action: action, Resource: resourceOf(rule, method), Method: method, Result: "denied", Client: addr})
	}
}

func resourceOf(rule Rule, method string) string {
	if rule.Resource != "" {
		return rule.Resource
	}
	return method
}

func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Internal, "auth: internal error")
}

func (g *Guard) record(ctx context.Context, p *Principal, rule Rule, method string, req any, err error, start time.Time) {
	if g.audit == nil || rule.Audit == "" {
		return
	}
	a := Access{Action: rule.Audit, Resource: resourceOf(rule, method), Method: method, Result: "success", Duration: time.Since(start)}
	if err != nil {
		a.Result = "failure"
		if status.Code(err) == codes.PermissionDenied {
			a.Result = "denied"
		}
	}
	if rule.Describe != nil && req != nil {
		a.ResourceID = rule.Describe(req)
	}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		a.Client = pr.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			a.RequestID = v[0]
		}
	}
	if p == nil || p.Anonymous() && rule.Internal {
		p = &Principal{ID: "cluster-peer", Kind: KindInternal}
	}
	g.audit.Record(p, a)
}

// UnaryInterceptor authenticates, authorizes and self-audits unary calls.
func (g *Guard) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx, p, rule, err := g.admit(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		g.record(ctx, p, rule, info.FullMethod, req, err, start)
		return resp, err
	}
}

// StreamInterceptor authenticates, authorizes and self-audits streams.
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		ctx, p, rule, err := g.admit(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		err = handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
		g.record(ctx, p, rule, info.FullMethod, nil, err, start)
		return err
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// BearerCredentials sends token as "authorization: Bearer <token>" on
// every call of a client connection. With requireTLS false it is also
// sent over plaintext connections (loopback development only).
func BearerCredentials(token string, requireTLS bool) credentials.PerRPCCredentials {
	return bearer{"Bearer " + token, requireTLS}
}

type bearer struct {
	header     string
	requireTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.header}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.requireTLS }

// String hides the token if the credentials are ever printed.
func (b bearer) String() string { return "Bearer [redacted]" }

// FormatPermissions lists a permission set's names.
func FormatPermissions(p Permission) []string {
	if p == 0 {
		return nil
	}
	return strings.Split(p.String(), ",")
}
