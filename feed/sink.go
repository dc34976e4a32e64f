package feed

import (
	"context"
	"errors"
	"fmt"
)

// Sink delivers batches of entries to one outside system.
//
// Deliver returns nil only when the receiver has acknowledged every item
// of batch (for Kafka: written with acks=all; for HTTP sinks: a success
// response). The runner retries whatever is not acknowledged, so a sink
// must make redelivery harmless where its receiver allows it (the ledger
// index is the idempotency key). Deliver may return a *PartialError to
// say which items failed; the others count as delivered. Deliver is never
// called concurrently on one Sink. Close releases its connections.
type Sink interface {
	Deliver(ctx context.Context, batch []*Item) error
	Close() error
}

// Pipeliner is a Sink that can have several batches in flight; the
// runner uses it when Delivery.InFlight is above 1. Send starts the
// delivery of batch and returns at once (or when the sink must first
// make room); the wait it returns blocks until the receiver has
// answered for every item, or ctx ends, and returns what Deliver would
// have. The runner calls Send from one goroutine in feed order, so a
// sink that keeps its sends in order keeps the feed's order (Kafka:
// per partition); it calls each wait once, in the same order. Deliver
// must still work alone: the runner uses it for retries.
type Pipeliner interface {
	Sink
	Send(ctx context.Context, batch []*Item) (wait func() error)
}

// ErrRejected marks an item (or a whole batch) that the receiver refused
// as malformed and will refuse again: retrying cannot help. The runner
// moves such items to the dead-letter file when one is configured, and
// otherwise keeps retrying, with an alert, until an operator acts.
var ErrRejected = errors.New("feed: rejected by receiver")

// ErrNotLeader is returned by a runner that stopped because this node is
// no longer the leader.
var ErrNotLeader = errors.New("feed: not the leader")

// ItemError is the failure of one item of a batch.
type ItemError struct {
	Pos int   // position in the batch passed to Deliver
	Err error // wraps ErrRejected when retrying cannot help
}

// PartialError reports that some items of a batch failed and the rest
// were acknowledged.
type PartialError struct {
	Failed []ItemError
}

func (e *PartialError) Error() string {
	if len(e.Failed) == 0 {
		return "feed: partial failure of no items"
	}
	return fmt.Sprintf("feed: %d items failed; first (batch position %d): %v", len(e.Failed), e.Failed[0].Pos, e.Failed[0].Err)
}
