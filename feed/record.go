package feed

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Record is the JSON form of an entry that every sink sends: the event in
// the audit service's field names, plus what lets a receiver check it —
// the ledger index (the idempotency key), the RFC 6962 leaf hash and the
// HMAC signature, hex-encoded. With the leaf bytes (Leaf, base64, when a
// sink is configured to include them) a receiver can recompute the leaf
// hash and ask the ledger for an inclusion proof.
type Record struct {
	Index      uint64        `json:"index"`
	ID         string        `json:"id"`
	Timestamp  string        `json:"timestamp,omitempty"`
	Actor      RecordActor   `json:"actor"`
	Action     RecordAction  `json:"action"`
	Context    RecordContext `json:"context"`
	Version    string        `json:"version,omitempty"`
	ReceivedAt string        `json:"receivedAt"`
	LeafHash   string        `json:"leafHash"`
	KeyID      string        `json:"keyId"`
	Signature  string        `json:"signature"`
	Leaf       string        `json:"leaf,omitempty"`
}

// RecordActor is Record.Actor.
type RecordActor struct {
	ID        string `json:"id"`
	Type      string `json:"type,omitempty"`
	IP        string `json:"ip,omitempty"`
	Session   string `json:"session,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// RecordAction is Record.Action.
type RecordAction struct {
	Type       string            `json:"type"`
	Resource   string            `json:"resource"`
	ResourceID string            `json:"resourceId,omitempty"`
	Result     string            `json:"result"`
	Duration   int64             `json:"duration,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// RecordContext is Record.Context.
type RecordContext struct {
	RequestID   string `json:"requestId,omitempty"`
	Environment string `json:"environment,omitempty"`
	Application string `json:"application,omitempty"`
	Version     string `json:"version,omitempty"`
}

// NewRecord builds the record of it; withLeaf adds the leaf bytes.
func NewRecord(it *Item, withLeaf bool) Record {
	e := it.Entry
	r := Record{
		Index:     it.Index,
		ID:        e.ID,
		Timestamp: e.Timestamp,
		Actor:     RecordActor{ID: e.Actor.ID, Type: e.Actor.Type, IP: e.Actor.IP, Session: e.Actor.Session, UserAgent: e.Actor.UserAgent},
		Action: RecordAction{Type: e.Action.Type, Resource: e.Action.Resource, ResourceID: e.Action.ResourceID,
			Result: e.Action.Result, Duration: e.Action.Duration, Metadata: e.Action.Metadata},
		Context:    RecordContext{RequestID: e.Context.RequestID, Environment: e.Context.Environment, Application: e.Context.Application, Version: e.Context.Version},
		Version:    e.Version,
		ReceivedAt: e.ReceivedTime().Format(time.RFC3339Nano),
		LeafHash:   hex.EncodeToString(it.LeafHash[:]),
		KeyID:      e.KeyID,
		Signature:  hex.EncodeToString(e.Signature),
	}
	if withLeaf {
		r.Leaf = base64.StdEncoding.EncodeToString(it.Leaf)
	}
	return r
}

// MarshalRecord is json.Marshal(NewRecord(it, withLeaf)). A Record holds
// only strings, integers and a string map, so it cannot fail.
func MarshalRecord(it *Item, withLeaf bool) []byte {
	b, err := json.Marshal(NewRecord(it, withLeaf))
	if err != nil {
		panic("feed: marshal record: " + err.Error())
	}
	return b
}
