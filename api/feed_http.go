package api

import (
	"encoding/json"
	"net/http"

	"github.com/auditledger/ledgerd/feed"
)

// SinkDependency is one sink in the /health/dependencies report.
type SinkDependency struct {
	Name       string  `json:"name"`
	Type       string  `json:"type"`
	Status     string  `json:"status"` // healthy, failing (retrying) or alerting
	Running    bool    `json:"running"`
	Cursor     uint64  `json:"cursor"`
	LagEvents  uint64  `json:"lagEvents"`
	LagSeconds float64 `json:"lagSeconds"`
	LastError  string  `json:"lastError,omitempty"`
}

// SinkDependencies is the sinks part of /health/dependencies.
type SinkDependencies struct {
	// Status is "healthy", "degraded" (a sink is alerting) or "none"
	// (no sink configured).
	Status string           `json:"status"`
	Sinks  []SinkDependency `json:"sinks"`
}

// SinksDependencies reports the sinks of m (nil: none configured).
func SinksDependencies(m *feed.Manager) SinkDependencies {
	out := SinkDependencies{Status: "none", Sinks: []SinkDependency{}}
	if m.Configured() {
		out.Status = "healthy"
		if !m.Healthy() {
			out.Status = "degraded"
		}
	}
	for _, s := range m.Status() {
		st := "healthy"
		switch {
		case s.Alerting:
			st = "alerting"
		case !s.FailingSince.IsZero():
			st = "failing"
		}
		out.Sinks = append(out.Sinks, SinkDependency{Name: s.Name, Type: s.Type, Status: st, Running: s.Running,
			Cursor: s.Cursor, LagEvents: s.LagEvents, LagSeconds: s.LagSeconds, LastError: s.LastError})
	}
	return out
}

// SinksHealthHandler serves SinksDependencies as JSON: 200 when healthy
// or none is configured, 503 when a sink is alerting. The HTTP API
// mounts it at (or merges it into) /health/dependencies.
func SinksHealthHandler(m *feed.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := SinksDependencies(m)
		w.Header().Set("Content-Type", "application/json")
		if d.Status == "degraded" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(d)
	})
}
