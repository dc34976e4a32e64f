package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// Generator makes realistic audit events of the shape the old service
// logged (see the seed README): users, services and API keys acting on
// documents, payments, patient records, roles..., with a skewed (Zipf)
// choice of actors and resources, mostly successful results, plausible
// metadata, request ids and client timestamps. Events are padded with a
// "details" metadata entry to reach the wanted size, measured as the
// protobuf encoding of the event.
//
// The same seed gives the same sequence of events (for a given Go
// version: math/rand/v2's PCG and its derived distributions). Client
// timestamps start at a fixed date and advance with the sequence, so no
// clock is read. A Generator is not safe for concurrent use; give each
// client its own (see SeedFor).
type Generator struct {
	r      *rand.Rand
	users  *rand.Zipf
	res    *rand.Zipf
	size   int
	seq    uint64
	clock  time.Time
	lastSz int
}

// Epoch is the first client timestamp of every generator.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultUsers is the size of the user population events are drawn from.
const DefaultUsers = 50_000

// NewUsers draws user numbers (1..users) from a Zipf distribution: a few
// users are very active, most act rarely.
func NewUsers(r *rand.Rand, users int) *rand.Zipf {
	if users <= 0 {
		users = DefaultUsers
	}
	return rand.NewZipf(r, 1.1, 1, uint64(max(users, 2))-1)
}

// UserID and UserIP name user number u (its address is stable).
func UserID(u uint64) string { return "user-" + strconv.FormatUint(u, 10) }
func UserIP(u uint64) string { return fmt.Sprintf("10.%d.%d.%d", u%200, (u/200)%250, 1+u%253) }

// NewGenerator returns a generator of events of about size bytes (0: no
// padding, about 300 bytes) whose user actors come from a population of
// users (0: DefaultUsers).
func NewGenerator(seed uint64, size, users int) *Generator {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Generator{
		r:     r,
		users: NewUsers(r, users),
		res:   rand.NewZipf(r, 1.05, 1, 999_999),
		size:  size,
		clock: Epoch,
	}
}

// SeedFor derives client i's seed from the run's seed.
func SeedFor(seed uint64, i int) uint64 {
	// splitmix64 of (seed, i): neighbouring clients get unrelated streams.
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

type resourceKind struct {
	name, idPrefix string
	actions        []string
	apps           []string
}

var resources = []resourceKind{
	{"document", "doc", []string{"read", "read", "read", "update", "create", "share", "export", "delete"}, []string{"document-service", "web-portal"}},
	{"user", "user", []string{"login", "login", "logout", "update", "password_change", "mfa_enroll", "create", "delete"}, []string{"auth-service", "admin-console"}},
	{"session", "sess", []string{"create", "refresh", "revoke"}, []string{"auth-service"}},
	{"payment", "pay", []string{"create", "capture", "refund", "read"}, []string{"billing-service", "checkout"}},
	{"invoice", "inv", []string{"create", "approve", "void", "read", "export"}, []string{"billing-service"}},
	{"patient-record", "pr", []string{"read", "read", "update", "export"}, []string{"ehr-gateway"}},
	{"role", "role", []string{"grant", "revoke", "update"}, []string{"admin-console", "iam-service"}},
	{"api-key", "key", []string{"create", "rotate", "revoke"}, []string{"iam-service"}},
	{"report", "rpt", []string{"generate", "export", "read"}, []string{"compliance-service"}},
	{"file", "file", []string{"upload", "download", "download", "delete"}, []string{"storage-gateway", "web-portal"}},
	{"setting", "cfg", []string{"update", "read"}, []string{"admin-console"}},
}

var appVersions = map[string][]string{
	"document-service": {"2.1.0", "2.1.1"}, "web-portal": {"5.14.2"}, "auth-service": {"3.0.4", "3.1.0"},
	"admin-console": {"1.9.0"}, "billing-service": {"4.2.7"}, "checkout": {"7.0.1"}, "ehr-gateway": {"1.3.12"},
	"iam-service": {"2.0.0"}, "compliance-service": {"0.9.3"}, "storage-gateway": {"1.1.5"},
}

var httpMethods = map[string]string{"read": "GET", "download": "GET", "export": "GET", "delete": "DELETE", "update": "PUT"}

var regions = []string{"eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2"}

var services = []string{"svc-scheduler", "svc-indexer", "svc-billing-batch", "svc-backup", "svc-sync", "svc-notifier"}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
	"okhttp/4.12.0",
	"python-requests/2.32.3",
	"Go-http-client/2.0",
}

var failureReasons = map[string][]string{
	"failure": {"invalid_credentials", "validation_failed", "conflict", "timeout_upstream"},
	"denied":  {"insufficient_role", "mfa_required", "ip_not_allowed", "policy_violation"},
	"error":   {"internal_error", "db_unavailable", "dependency_failed"},
}

var words = strings.Fields("the quick audit trail records every action on every resource " +
	"with actor request context result and duration for later review by compliance auditors " +
	"security teams and automated anomaly detection pipelines across regions and tenants")

// Next returns the next event.
func (g *Generator) Next() *pb.Event {
	r := g.r
	g.seq++
	g.clock = g.clock.Add(time.Duration(200+r.IntN(1800)) * time.Microsecond)

	kind := resources[r.IntN(len(resources))]
	app := kind.apps[r.IntN(len(kind.apps))]
	vers := appVersions[app]

	actor := &pb.Actor{}
	switch p := r.IntN(100); {
	case p < 80:
		u := g.users.Uint64() + 1
		actor.Id = UserID(u)
		actor.Type = "user"
		actor.Ip = UserIP(u)
		actor.Session = "sess_" + g.hex(16)
		actor.UserAgent = userAgents[u%uint64(len(userAgents))]
	case p < 95:
		actor.Id = services[r.IntN(len(services))]
		actor.Type = "service"
		actor.Ip = fmt.Sprintf("172.16.%d.%d", r.IntN(16), 2+r.IntN(250))
		actor.UserAgent = "Go-http-client/2.0"
	case p < 98:
		actor.Id = "system"
		actor.Type = "system"
	default:
		actor.Id = "ak_" + g.hex(12)
		actor.Type = "api-key"
		actor.Ip = fmt.Sprintf("203.0.113.%d", 1+r.IntN(254))
		actor.UserAgent = userAgents[4+r.IntN(3)]
	}

	result := "success"
	switch p := r.IntN(100); {
	case p < 92:
	case p < 96:
		result = "failure"
	case p < 99:
		result = "denied"
	default:
		result = "error"
	}
	action := &pb.Action{
		Type:       kind.actions[r.IntN(len(kind.actions))],
		Resource:   kind.name,
		ResourceId: kind.idPrefix + "-" + strconv.FormatUint(g.res.Uint64()+1, 10),
		Result:     result,
		// Roughly log-normal: most actions take tens of ms, a few seconds.
		Duration: int64(math.Exp(r.NormFloat64()*1.1 + 3.2)),
		Metadata: map[string]string{},
	}
	method := httpMethods[action.Type]
	if method == "" {
		method = "POST"
	}
	action.Metadata["method"] = method
	action.Metadata["path"] = "/api/v1/" + kind.name + "s/" + action.ResourceId
	if result != "success" {
		rs := failureReasons[result]
		action.Metadata["reason"] = rs[r.IntN(len(rs))]
	}
	if r.IntN(4) == 0 {
		action.Metadata["region"] = regions[r.IntN(len(regions))]
	}

	env := "production"
	switch p := r.IntN(100); {
	case p >= 95:
		env = "development"
	case p >= 85:
		env = "staging"
	}
	ev := &pb.Event{
		Timestamp: g.clock.Format(time.RFC3339Nano),
		Actor:     actor,
		Action:    action,
		Context: &pb.Context{
			RequestId:   "req-" + g.hex(16),
			Environment: env,
			Application: app,
			Version:     vers[r.IntN(len(vers))],
		},
		Version: "1.0.0",
	}
	g.pad(ev)
	g.lastSz = proto.Size(ev)
	return ev
}

// LastSize is the encoded size of the last event returned.
func (g *Generator) LastSize() int { return g.lastSz }

// pad brings the encoded event to about g.size bytes: it drops optional
// fields (the request path, the user agent, the session) while the event
// is too big, and adds a "details" metadata entry of words while it is
// too small.
func (g *Generator) pad(ev *pb.Event) {
	if g.size <= 0 {
		return
	}
	for _, drop := range []func(){
		func() { delete(ev.Action.Metadata, "path") },
		func() { ev.Actor.UserAgent = "" },
		func() { ev.Actor.Session = "" },
	} {
		if proto.Size(ev) <= g.size {
			break
		}
		drop()
	}
	// A map entry costs its key and value plus about 6 bytes of framing.
	missing := g.size - proto.Size(ev) - len("details") - 6
	if missing <= 0 {
		return
	}
	var b strings.Builder
	b.Grow(missing + 16)
	for b.Len() < missing {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.r.IntN(len(words))])
	}
	s := b.String()
	if len(s) > missing {
		s = s[:missing]
	}
	ev.Action.Metadata["details"] = s
}

const hexDigits = "0123456789abcdef"

func (g *Generator) hex(n int) string {
	b := make([]byte, n)
	for i := 0; i < n; i += 16 {
		v := g.r.Uint64()
		for j := i; j < min(n, i+16); j++ {
			b[j] = hexDigits[v&15]
			v >>= 4
		}
	}
	return string(b)
}
