package api

import (
	"fmt"

	"github.com/auditledger/ledgerd/ledger"
)

// conflictError is an ErrConflict naming the event's field.
type conflictError struct {
	field string
	msg   string
}

func (e *conflictError) Error() string { return e.msg }
func (e *conflictError) Unwrap() error { return ErrConflict }

// checkDuplicates compares each event the ledger found already stored
// (same id) with the stored one. A retry carries the same event; an
// event that differs reused an id, and is refused (409, AlreadyExists)
// rather than silently answered with another event's index. Only the
// fields that are never encrypted are compared (the stored copy of the
// others may be ciphertext under a random nonce), so an identical retry
// is never refused. Only duplicates pay for the check.
//
// Appends are atomic per call, so when a batch mixes new events with a
// conflicting one, the new ones are stored; the error says so.
func (s *LedgerService) checkDuplicates(events []ledger.Event, results []ledger.AppendResult) error {
	fresh := 0
	var first error
	for i, r := range results {
		if !r.Duplicate {
			fresh++
			continue
		}
		if first != nil || i >= len(events) {
			continue
		}
		leaf, err := s.l.Store().Leaf(r.Index)
		if err != nil {
			return err
		}
		stored, err := ledger.DecodeLeaf(leaf)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ledger.ErrCorrupt, r.Index, err)
		}
		if f := differingField(&events[i], &stored.Event); f != "" {
			prefix := ""
			if len(events) > 1 {
				prefix = fmt.Sprintf("events[%d].", i)
			}
			first = &conflictError{field: prefix + "id", msg: fmt.Sprintf(
				"api: %sid %q is already used by the event at index %d, whose %s differs; give a new event a new id (or none)",
				prefix, r.ID, r.Index, f)}
		}
	}
	if first != nil && fresh > 0 {
		c := first.(*conflictError)
		c.msg += fmt.Sprintf("; the other %d new events of this batch were appended", fresh)
	}
	return first
}

// differingField names the first clear field in which a and b differ.
func differingField(a, b *ledger.Event) string {
	switch {
	case a.Timestamp != b.Timestamp:
		return "timestamp"
	case a.Action.Type != b.Action.Type:
		return "action.type"
	case a.Action.Resource != b.Action.Resource:
		return "action.resource"
	case a.Action.Result != b.Action.Result:
		return "action.result"
	case a.Action.Duration != b.Action.Duration:
		return "action.duration"
	case a.Version != b.Version:
		return "version"
	}
	return ""
}
