package ledger

import "errors"

// Sentinel errors. Callers test them with errors.Is; the api package maps
// them to gRPC codes and HTTP statuses in one place.
var (
	// ErrInvalid reports bad input: an event that fails validation, a
	// malformed leaf, an index or size out of range. Nothing was written.
	ErrInvalid = errors.New("ledger: invalid argument")
	// ErrNotFound reports an index, id or leaf hash that is not in the log.
	ErrNotFound = errors.New("ledger: not found")
	// ErrTooLarge reports an event or batch over the configured limits.
	ErrTooLarge = errors.New("ledger: too large")
	// ErrPushback reports that the write queue is full; retry later.
	ErrPushback = errors.New("ledger: too many pending appends")
	// ErrClosed reports use of a ledger after Close.
	ErrClosed = errors.New("ledger: closed")
	// ErrCorrupt reports stored data that fails its own checks.
	ErrCorrupt = errors.New("ledger: corrupt data")
	// ErrNotLeader reports a write to a node that cannot accept it now
	// (cluster mode, no leader known). Retry with the same event ids.
	ErrNotLeader = errors.New("ledger: not the leader")
)

// FieldError is an ErrInvalid that names the offending field in the
// event's JSON spelling ("actor.id", "action.result").
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "ledger: invalid " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }
