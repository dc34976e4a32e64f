// Package auth authenticates and authorizes every call to ledgerd: API
// tokens, TLS client certificates, roles and their permissions, one gRPC
// interceptor pair and one HTTP middleware (Guard), and the TLS settings
// of the API listeners.
//
// # Principals
//
// A caller is a Principal with roles and the permissions they grant
// (roles.go). It authenticates with, in this order:
//
//  1. a bearer token ("authorization: Bearer ldg_<id>_<secret>"): an API
//     token from the replicated token table (Tokens), or the admin token
//     the operator configured (LEDGER_ADMIN_TOKEN). A token that is
//     present but bad (malformed, unknown, expired, revoked) fails; it
//     never falls back to anything else;
//  2. a TLS client certificate verified against the configured client CA
//     and mapped to roles by the first matching CertRule (cn:, dns:,
//     uri: or email:);
//  3. nothing: the anonymous principal, which holds only what the
//     configuration grants everyone (PublicProofs, or AnonymousRole for
//     tests on loopback).
//
// Tokens are random (8-byte id, 32-byte secret), shown once at creation
// and stored as SHA-256 hashes under the ledger's reserved table s/t/,
// written through the ledger's Committer: in a cluster every node holds
// the same table and a revocation reaches every node. Token checks read
// the local store on every call (no cache), so a revocation takes effect
// as soon as it is applied.
//
// # Authorization
//
// Methods (gRPC, methods.go) and the HTTP API's route table map each call
// to a Rule: the permission it needs, whether it is public (health) or
// cluster-internal (authorized by the Cluster service itself), and the
// self-audit action it records. A call missing from the tables is
// refused (fail closed). A caller without credentials that lacks a
// permission gets Unauthenticated (401); an authenticated one gets
// PermissionDenied (403) naming the missing permission.
//
// # Self-audit
//
// After a call whose rule names an Audit action, the Guard hands an
// Access to its Auditor (package selfaudit), which appends it to the
// ledger in batches. Refusals of authenticated callers are recorded too
// ("denied"); refusals of anonymous callers are only logged, so that
// nobody can fill the ledger without credentials. Appends are never
// recorded.
//
// # Use
//
//  1. tokens := NewTokens(store, committer, nil)
//  2. a, err := NewAuthenticator(tokens, cfg, configuredAdminToken)
//  3. g := NewGuard(a, DefaultMethods(), auditor, logger)
//  4. grpc.NewServer(grpc.ChainUnaryInterceptor(g.UnaryInterceptor()),
//     grpc.ChainStreamInterceptor(g.StreamInterceptor()), ...) and
//     g.Middleware(routes, writeErr, mux) for HTTP.
//  5. Handlers find the caller with FromContext(ctx).
//
// Everything here is safe for concurrent use. Secrets never appear in
// errors or logs: errors name a token by its id only.
package auth
