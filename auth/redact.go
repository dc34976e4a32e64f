package auth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// Self-audit events say what a caller searched for, but a search term
// can be personal data (an actor id, an IP address, a resource or
// request id). Self-audit events are leaves, which an erasure cannot
// change, so those values are recorded as "[redacted]": the event shows
// that the caller filtered by them, not the values.

// auditableParams are the HTTP query parameters whose values are
// recorded.
var auditableParams = map[string]bool{
	"actorType": true, "actionType": true, "resource": true, "result": true,
	"application": true, "environment": true,
	"startTime": true, "endTime": true, "timeField": true, "limit": true, "order": true,
}

// Redacted stands for a value left out of a self-audit event.
const Redacted = "[redacted]"

// RedactQuery renders an HTTP query string for a self-audit event, with
// the values of parameters that may hold personal data redacted.
func RedactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "[unparseable query]"
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		v := Redacted
		if auditableParams[k] {
			v = strings.Join(q[k], ",")
		}
		b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
	}
	return b.String()
}

// redactFilter renders a gRPC query filter for a self-audit event, like
// RedactQuery.
func redactFilter(f *pb.QueryFilter) string {
	if f == nil {
		return ""
	}
	var parts []string
	add := func(name, v string, keep bool) {
		if v == "" {
			return
		}
		if !keep {
			v = Redacted
		}
		parts = append(parts, fmt.Sprintf("%s=%q", name, v))
	}
	add("actor_id", f.ActorId, false)
	add("actor_type", f.ActorType, true)
	add("actor_ip", f.ActorIp, false)
	add("action_type", f.ActionType, true)
	add("resource", f.Resource, true)
	add("resource_id", f.ResourceId, false)
	add("result", f.Result, true)
	add("application", f.Application, true)
	add("environment", f.Environment, true)
	add("request_id", f.RequestId, false)
	add("received_after", f.ReceivedAfter, true)
	add("received_before", f.ReceivedBefore, true)
	add("timestamp_after", f.TimestampAfter, true)
	add("timestamp_before", f.TimestampBefore, true)
	return strings.Join(parts, " ")
}
