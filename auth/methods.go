package auth

import (
	"fmt"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// Rule is how one RPC (or HTTP route) is authorized and self-audited.
type Rule struct {
	// Perm is what the caller needs (0: any caller, anonymous included).
	Perm Permission
	// Public skips authentication altogether (health, reflection).
	Public bool
	// Internal marks cluster-internal calls that the service authorizes
	// itself (the cluster token or a peer certificate): the interceptor
	// lets them through with the anonymous principal.
	Internal bool
	// Audit is the self-audit action recorded for the call ("" for
	// none): reads, queries, exports, reports, token, key and cluster
	// changes. Appends are never self-audited.
	Audit string
	// Resource names what the call touches in the audit event.
	Resource string
	// Describe, when set, says which part of Resource a request touched
	// ("index 5", "from 0, 100 entries") for the audit event.
	Describe func(req any) string
}

// Self-audit actions.
const (
	AuditAccess   = "access_audit_data"
	AuditQuery    = "query_audit_data"
	AuditExport   = "export_audit_data"
	AuditReport   = "generate_report"
	AuditAnalyze  = "analyze_audit_data"
	AuditTokens   = "manage_tokens"
	AuditKeys     = "manage_keys"
	AuditCluster  = "change_cluster"
	AuditSettings = "change_configuration"
)

// Methods maps full gRPC method names to their rules. A method missing
// from the table is refused (fail closed): a package adding an RPC adds
// its line here.
type Methods map[string]Rule

// DefaultMethods is the table of every RPC ledgerd serves.
func DefaultMethods() Methods {
	return Methods{
		"/ledger.v1.Ledger/Append":              {Perm: PermAppend},
		"/ledger.v1.Ledger/AppendBatch":         {Perm: PermAppend},
		"/ledger.v1.Ledger/GetEntry":            {Perm: PermRead, Audit: AuditAccess, Resource: "entry", Describe: describeGetEntry},
		"/ledger.v1.Ledger/GetEntries":          {Perm: PermRead, Audit: AuditAccess, Resource: "entries", Describe: describeGetEntries},
		"/ledger.v1.Ledger/GetCheckpoint":       {Perm: PermProofs},
		"/ledger.v1.Ledger/GetInclusionProof":   {Perm: PermProofs},
		"/ledger.v1.Ledger/GetConsistencyProof": {Perm: PermProofs},
		// The change feed streams event contents in bulk: an export.
		"/ledger.v1.Feed/Subscribe":   {Perm: PermExport, Audit: AuditExport, Resource: "feed", Describe: describeSubscribe},
		"/ledger.v1.Feed/SinksStatus": {Perm: PermCluster},
		"/ledger.v1.Query/Query":      {Perm: PermQuery, Audit: AuditQuery, Resource: "events", Describe: describeQuery},
		"/ledger.v1.Query/Export":     {Perm: PermExport, Audit: AuditExport, Resource: "events", Describe: describeExport},

		// Node to node; the Cluster service checks the cluster token or
		// the peer certificate itself. Join and Remove change the cluster
		// and are audited.
		"/ledger.v1.Cluster/Forward":    {Internal: true},
		"/ledger.v1.Cluster/ForwardKV":  {Internal: true},
		"/ledger.v1.Cluster/NodeStatus": {Internal: true},
		"/ledger.v1.Cluster/Join":       {Internal: true, Audit: AuditCluster, Resource: "cluster", Describe: describeJoin},
		"/ledger.v1.Cluster/Remove":     {Internal: true, Audit: AuditCluster, Resource: "cluster", Describe: describeRemove},
		"/ledger.v1.Cluster/Status":     {Perm: PermCluster},

		"/ledger.v1.Admin/WhoAmI":      {},
		"/ledger.v1.Admin/CreateToken": {Perm: PermTokens, Audit: AuditTokens, Resource: "token", Describe: describeCreateToken},
		"/ledger.v1.Admin/ListTokens":  {Perm: PermTokens, Audit: AuditTokens, Resource: "tokens"},
		"/ledger.v1.Admin/RevokeToken": {Perm: PermTokens, Audit: AuditTokens, Resource: "token", Describe: describeRevokeToken},
		"/ledger.v1.Admin/RotateKey":   {Perm: PermKeys, Audit: AuditKeys, Resource: "encryption_key"},
		"/ledger.v1.Admin/ListKeys":    {Perm: PermKeys},
		// The erasure appends its own event: not audited twice.
		"/ledger.v1.Admin/Erase": {Perm: PermErase},

		"/grpc.health.v1.Health/Check":                                   {Public: true},
		"/grpc.health.v1.Health/Watch":                                   {Public: true},
		"/grpc.health.v1.Health/List":                                    {Public: true},
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Public: true},
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Public: true},
	}
}

func describeGetEntry(req any) string {
	switch k := req.(*pb.GetEntryRequest).GetKey().(type) {
	case *pb.GetEntryRequest_Index:
		return fmt.Sprintf("index %d", k.Index)
	case *pb.GetEntryRequest_Id:
		return "id " + k.Id
	}
	return ""
}

func describeGetEntries(req any) string {
	r := req.(*pb.GetEntriesRequest)
	n := r.Count
	if n == 0 {
		n = 100
	}
	return fmt.Sprintf("from %d, at most %d", r.StartIndex, n)
}

func describeSubscribe(req any) string {
	r := req.(*pb.SubscribeRequest)
	return fmt.Sprintf("from %d, follow %t, proofs %t", r.FromIndex, r.Follow, r.WithProof)
}

func describeQuery(req any) string {
	r := req.(*pb.QueryRequest)
	return fmt.Sprintf("filter {%s}, descending %t, limit %d", redactFilter(r.GetFilter()), r.Descending, r.Limit)
}

func describeExport(req any) string {
	r := req.(*pb.ExportRequest)
	return fmt.Sprintf("filter {%s}, descending %t, limit %d", redactFilter(r.GetFilter()), r.Descending, r.Limit)
}

func describeJoin(req any) string {
	r := req.(*pb.ClusterJoinRequest)
	return "join " + r.NodeId + " raft " + r.RaftAddr
}

func describeRemove(req any) string { return "remove " + req.(*pb.ClusterRemoveRequest).NodeId }

func describeCreateToken(req any) string {
	r := req.(*pb.CreateTokenRequest)
	return fmt.Sprintf("create role %s name %q", r.Role, r.Name)
}

func describeRevokeToken(req any) string { return "revoke " + req.(*pb.RevokeTokenRequest).Id }
