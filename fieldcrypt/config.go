package fieldcrypt

import (
	"fmt"
	"path"
	"strings"

	"github.com/auditledger/ledgerd/ledger"
)

// Config says what is encrypted and with which master key.
type Config struct {
	// Disabled turns field encryption off: events are stored as sent.
	Disabled bool `json:"disabled"`
	// KeyFile holds the master key as 64 hex digits (env
	// AUDIT_ENCRYPTION_KEY; default DATA_DIR/encryption.key, generated on
	// a node's first start). OldKeyFiles hold retired master keys that
	// still unwrap.
	KeyFile     string   `json:"keyFile"`
	OldKeyFiles []string `json:"oldKeyFiles"`
	// SensitiveFields are decrypted only for roles allowed to see
	// sensitive data. An entry is an event field ("context.requestId"),
	// "metadata.<glob>", or a bare metadata key glob ("password",
	// "*secret*"); metadata keys match case-insensitively. Default:
	// password, token, ssn, creditCard.
	SensitiveFields []string `json:"sensitiveFields"`
	// SubjectField names the data subject of an event: "actor.id"
	// (default), another event field, "metadata.<key>", or "none" to turn
	// per-subject keys (and erasure) off.
	SubjectField string `json:"subjectField"`
	// PersonalFields are encrypted under the subject's data key, so that
	// erasing the subject makes them unreadable. Same syntax as
	// SensitiveFields. Default: actor.id, actor.ip, actor.session,
	// actor.userAgent.
	PersonalFields []string `json:"personalFields"`
	// SearchableFields are personal fields encrypted deterministically
	// under the subject's data key (see format.go): equal values of one
	// subject have equal stored forms, so they can be looked up by value
	// and indexed once. That shows which of a subject's events share a
	// value, nothing more; sensitive fields never are. Default: the
	// default personal fields.
	SearchableFields []string `json:"searchableFields"`
}

// Defaults of Config.
var (
	DefaultSensitiveFields  = []string{"password", "token", "ssn", "creditCard"}
	DefaultPersonalFields   = []string{"actor.id", "actor.ip", "actor.session", "actor.userAgent"}
	DefaultSearchableFields = []string{"actor.id", "actor.ip", "actor.session", "actor.userAgent"}
	DefaultSubjectField     = "actor.id"
)

// eventField is one top-level string field of an event.
type eventField struct {
	name string
	get  func(e *ledger.Event) *string
}

// encryptable are the event fields that may be encrypted. The id,
// timestamp, version and the required action fields stay in clear: the
// ledger validates and indexes them.
var encryptable = []eventField{
	{"actor.id", func(e *ledger.Event) *string { return &e.Actor.ID }},
	{"actor.type", func(e *ledger.Event) *string { return &e.Actor.Type }},
	{"actor.ip", func(e *ledger.Event) *string { return &e.Actor.IP }},
	{"actor.session", func(e *ledger.Event) *string { return &e.Actor.Session }},
	{"actor.userAgent", func(e *ledger.Event) *string { return &e.Actor.UserAgent }},
	{"action.resourceId", func(e *ledger.Event) *string { return &e.Action.ResourceID }},
	{"context.requestId", func(e *ledger.Event) *string { return &e.Context.RequestID }},
	{"context.environment", func(e *ledger.Event) *string { return &e.Context.Environment }},
	{"context.application", func(e *ledger.Event) *string { return &e.Context.Application }},
	{"context.version", func(e *ledger.Event) *string { return &e.Context.Version }},
}

// numEncryptable is len(encryptable), as a constant (the size of a data
// key's form cache).
const numEncryptable = 10

func init() {
	if len(encryptable) != numEncryptable {
		panic("fieldcrypt: numEncryptable is not len(encryptable)")
	}
}

// allStringFields are every string field, for decryption.
var allStringFields = append([]eventField{
	{"id", func(e *ledger.Event) *string { return &e.ID }},
	{"timestamp", func(e *ledger.Event) *string { return &e.Timestamp }},
	{"action.type", func(e *ledger.Event) *string { return &e.Action.Type }},
	{"action.resource", func(e *ledger.Event) *string { return &e.Action.Resource }},
	{"action.result", func(e *ledger.Event) *string { return &e.Action.Result }},
	{"version", func(e *ledger.Event) *string { return &e.Version }},
}, encryptable...)

func fieldByName(name string) (eventField, bool) {
	for _, f := range encryptable {
		if f.name == name {
			return f, true
		}
	}
	return eventField{}, false
}

// selector picks event fields and metadata keys.
type selector struct {
	fields []eventField    // top-level fields, in encryptable order
	exact  map[string]bool // lowercased metadata keys
	globs  []string        // lowercased metadata key patterns
	names  map[string]bool // top-level field names
}

func compileSelector(what string, entries []string) (*selector, error) {
	s := &selector{exact: map[string]bool{}, names: map[string]bool{}}
	for _, e := range entries {
		if e == "" {
			return nil, fmt.Errorf("fieldcrypt: %s: empty entry", what)
		}
		if f, ok := fieldByName(e); ok {
			if !s.names[f.name] {
				s.names[f.name] = true
			}
			continue
		}
		if strings.Contains(e, ".") && !strings.HasPrefix(e, "metadata.") && isEventFieldName(e) {
			return nil, fmt.Errorf("fieldcrypt: %s: field %q cannot be encrypted (the ledger validates or indexes it)", what, e)
		}
		pat := strings.ToLower(strings.TrimPrefix(e, "metadata."))
		if pat == "" {
			return nil, fmt.Errorf("fieldcrypt: %s: empty metadata key in %q", what, e)
		}
		if strings.ContainsAny(pat, "*?[\\") {
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("fieldcrypt: %s: bad pattern %q: %v", what, e, err)
			}
			s.globs = append(s.globs, pat)
		} else {
			s.exact[pat] = true
		}
	}
	for _, f := range encryptable {
		if s.names[f.name] {
			s.fields = append(s.fields, f)
		}
	}
	return s, nil
}

func isEventFieldName(name string) bool {
	for _, f := range allStringFields {
		if f.name == name {
			return true
		}
	}
	return false
}

func (s *selector) hasField(name string) bool { return s != nil && s.names[name] }

// metadata reports whether metadata key k is selected.
func (s *selector) metadata(k string) bool {
	if s == nil || (len(s.exact) == 0 && len(s.globs) == 0) {
		return false
	}
	lk := strings.ToLower(k)
	if s.exact[lk] {
		return true
	}
	for _, g := range s.globs {
		if ok, _ := path.Match(g, lk); ok {
			return true
		}
	}
	return false
}

func (s *selector) anyMetadata() bool { return len(s.exact) > 0 || len(s.globs) > 0 }

// subjectGetter returns the data subject of an event ("" for none).
type subjectGetter func(e *ledger.Event) string

func compileSubject(name string) (subjectGetter, error) {
	switch {
	case name == "":
		name = DefaultSubjectField
	case name == "none":
		return nil, nil
	}
	if f, ok := fieldByName(name); ok {
		return func(e *ledger.Event) string { return *f.get(e) }, nil
	}
	if k, ok := strings.CutPrefix(name, "metadata."); ok && k != "" {
		return func(e *ledger.Event) string { return e.Action.Metadata[k] }, nil
	}
	return nil, fmt.Errorf("fieldcrypt: subjectField %q: want an actor/context field, metadata.<key> or none", name)
}

// compiled is a checked Config.
type compiled struct {
	sensitive  *selector
	personal   *selector
	searchable *selector
	subject    subjectGetter
	plan       []plannedField // the event fields to encrypt
	anyMeta    bool           // some metadata keys are selected
}

// plannedField is one event field Transform encrypts.
type plannedField struct {
	eventField
	index      int // in encryptable: the field's slots in a formCache
	class      string
	searchable bool   // deterministic nonce under a data key
	aad        []byte // aad(class, name)
}

func (c *Config) compile() (*compiled, error) {
	sens, pers, srch := c.SensitiveFields, c.PersonalFields, c.SearchableFields
	if sens == nil {
		sens = DefaultSensitiveFields
	}
	if pers == nil {
		pers = DefaultPersonalFields
	}
	if srch == nil {
		srch = DefaultSearchableFields
	}
	var out compiled
	var err error
	if out.sensitive, err = compileSelector("sensitiveFields", sens); err != nil {
		return nil, err
	}
	if out.personal, err = compileSelector("personalFields", pers); err != nil {
		return nil, err
	}
	if out.searchable, err = compileSelector("searchableFields", srch); err != nil {
		return nil, err
	}
	if out.subject, err = compileSubject(c.SubjectField); err != nil {
		return nil, err
	}
	for i, f := range encryptable {
		class := ""
		switch {
		case out.sensitive.hasField(f.name):
			class = ClassSensitive
		case out.personal.hasField(f.name):
			class = ClassPersonal
		default:
			continue
		}
		out.plan = append(out.plan, plannedField{eventField: f, index: i, class: class,
			searchable: class == ClassPersonal && out.searchable.hasField(f.name), aad: aad(class, f.name)})
	}
	out.anyMeta = out.sensitive.anyMetadata() || out.personal.anyMetadata()
	return &out, nil
}
