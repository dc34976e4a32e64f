package ledger

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Event is one audit event as a client sends it. Field names follow the
// audit service this replaces; JSON spellings are given in the comments.
type Event struct {
	ID        string // id: optional; the server assigns a UUIDv7 when empty
	Timestamp string // timestamp: optional client time, RFC 3339
	Actor     Actor
	Action    Action
	Context   Context
	Version   string // version
}

// Actor is who acted.
type Actor struct {
	ID        string // actor.id (required)
	Type      string // actor.type
	IP        string // actor.ip
	Session   string // actor.session
	UserAgent string // actor.userAgent
}

// Action is what was done.
type Action struct {
	Type       string            // action.type (required)
	Resource   string            // action.resource (required)
	ResourceID string            // action.resourceId
	Result     string            // action.result (required): success, failure, denied or error
	Duration   int64             // action.duration, milliseconds
	Metadata   map[string]string // action.metadata
}

// Context is where it happened.
type Context struct {
	RequestID   string // context.requestId
	Environment string // context.environment
	Application string // context.application
	Version     string // context.version
}

// Limits on what one append may carry.
const (
	MaxEventBytes      = 64 << 10 // an event's canonical leaf
	MaxBatchEvents     = 10000
	MaxBatchBytes      = 16 << 20
	maxIDBytes         = 256
	maxMetadataEntries = 1024
)

// Results an action may have.
var validResults = map[string]bool{"success": true, "failure": true, "denied": true, "error": true}

// Validate checks the rules every stored event obeys. It returns a
// *FieldError (which is an ErrInvalid) naming the first bad field.
func (e *Event) Validate() error {
	required := []struct{ field, v string }{
		{"actor.id", e.Actor.ID},
		{"action.type", e.Action.Type},
		{"action.resource", e.Action.Resource},
		{"action.result", e.Action.Result},
	}
	for _, r := range required {
		if r.v == "" {
			return &FieldError{r.field, "required"}
		}
	}
	if !validResults[e.Action.Result] {
		return &FieldError{"action.result", fmt.Sprintf("%q is not one of success, failure, denied, error", e.Action.Result)}
	}
	if len(e.ID) > maxIDBytes {
		return &FieldError{"id", fmt.Sprintf("longer than %d bytes", maxIDBytes)}
	}
	if e.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
			return &FieldError{"timestamp", fmt.Sprintf("%q is not RFC 3339", e.Timestamp)}
		}
	}
	if e.Action.Duration < 0 {
		return &FieldError{"action.duration", "negative"}
	}
	if len(e.Action.Metadata) > maxMetadataEntries {
		return &FieldError{"action.metadata", fmt.Sprintf("more than %d entries", maxMetadataEntries)}
	}
	for k, v := range e.Action.Metadata {
		if k == "" {
			return &FieldError{"action.metadata", "empty key"}
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return &FieldError{"action.metadata." + k, "not valid UTF-8"}
		}
	}
	for _, f := range e.stringFields() {
		if !utf8.ValidString(*f.v) {
			return &FieldError{f.name, "not valid UTF-8"}
		}
	}
	return nil
}

type namedField struct {
	name string
	v    *string
}

// stringFields lists the event's string fields in canonical leaf order
// (metadata and duration excepted).
func (e *Event) stringFields() [16]namedField {
	return [16]namedField{
		{"id", &e.ID},
		{"timestamp", &e.Timestamp},
		{"actor.id", &e.Actor.ID},
		{"actor.type", &e.Actor.Type},
		{"actor.ip", &e.Actor.IP},
		{"actor.session", &e.Actor.Session},
		{"actor.userAgent", &e.Actor.UserAgent},
		{"action.type", &e.Action.Type},
		{"action.resource", &e.Action.Resource},
		{"action.resourceId", &e.Action.ResourceID},
		{"action.result", &e.Action.Result},
		{"context.requestId", &e.Context.RequestID},
		{"context.environment", &e.Context.Environment},
		{"context.application", &e.Context.Application},
		{"context.version", &e.Context.Version},
		{"version", &e.Version},
	}
}
