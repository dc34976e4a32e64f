package auth

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Permission is one thing a caller may do. A role is a set of them.
type Permission uint32

// Permissions, from the audit service this replaces (read, analyze,
// export, configure, report) and what the ledger adds.
const (
	PermAppend    Permission = 1 << iota // append events
	PermRead                             // read entries (event contents)
	PermQuery                            // search and filter events
	PermAnalyze                          // analytics
	PermExport                           // bulk export
	PermReport                           // compliance reports
	PermConfigure                        // server configuration
	PermTokens                           // create, list and revoke API tokens
	PermCluster                          // cluster membership and status
	PermKeys                             // rotate encryption keys
	PermErase                            // GDPR erasure of a data subject
	PermProofs                           // checkpoints and proofs (no event contents)
	PermSensitive                        // see sensitive fields decrypted
	permEnd
)

// PermAll is every permission.
const PermAll = permEnd - 1

var permNames = [...]string{
	"append", "read", "query", "analyze", "export", "report", "configure",
	"tokens", "cluster", "keys", "erase", "proofs", "read_sensitive",
}

// String is the permission's name ("export"); a set prints as a
// comma-separated list.
func (p Permission) String() string {
	if p == 0 {
		return "none"
	}
	var names []string
	for i, n := range permNames {
		if p&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if p&^PermAll != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint32(p&^PermAll)))
	}
	return strings.Join(names, ",")
}

// Has reports whether p includes every permission of q.
func (p Permission) Has(q Permission) bool { return p&q == q }

// Missing returns the permissions of need that p lacks.
func (p Permission) Missing(need Permission) Permission { return need &^ p }

// Count is how many permissions p holds.
func (p Permission) Count() int { return bits.OnesCount32(uint32(p)) }

// ParsePermission parses a permission name.
func ParsePermission(s string) (Permission, error) {
	for i, n := range permNames {
		if n == s {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("auth: unknown permission %q", s)
}

// Role is a named set of permissions.
type Role string

// The roles. The first four are the seed's; ingest and auditor are the
// ledger's.
const (
	RoleViewer     Role = "audit_viewer"       // read entries, query
	RoleAnalyst    Role = "audit_analyst"      // + analytics
	RoleAdmin      Role = "audit_admin"        // everything
	RoleCompliance Role = "compliance_officer" // read, analyze, export, report, sensitive fields
	RoleIngest     Role = "ingest"             // append only: a service's own token
	RoleAuditor    Role = "auditor"            // checkpoints and proofs only, no event contents
)

// roleTable is the fixed role → permission mapping. Sensitive-field
// access (PermSensitive) is added per Policy (SensitiveRoles).
var roleTable = map[Role]Permission{
	RoleViewer:     PermRead | PermQuery | PermProofs,
	RoleAnalyst:    PermRead | PermQuery | PermAnalyze | PermProofs,
	RoleAdmin:      PermAll &^ PermSensitive,
	RoleCompliance: PermRead | PermQuery | PermAnalyze | PermExport | PermReport | PermProofs,
	RoleIngest:     PermAppend,
	RoleAuditor:    PermProofs,
}

// DefaultSensitiveRoles may read sensitive fields decrypted.
var DefaultSensitiveRoles = []Role{RoleAdmin, RoleCompliance}

// Roles lists every role, sorted.
func Roles() []Role {
	out := make([]Role, 0, len(roleTable))
	for r := range roleTable {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := roleTable[r]; !ok {
		names := make([]string, 0, len(roleTable))
		for _, r := range Roles() {
			names = append(names, string(r))
		}
		return "", fmt.Errorf("auth: unknown role %q (one of %s)", s, strings.Join(names, ", "))
	}
	return r, nil
}

// Permissions returns the permissions of the role without the policy's
// additions (see Policy.Permissions).
func (r Role) Permissions() Permission { return roleTable[r] }
