package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// Clock is the time source of the scheduler; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t (at once when t is past) or when ctx ends.
	SleepUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Schedule hands out the intended start times of one phase's operations
// to all clients.
//
// Open loop (Interval > 0): operation i is due at Start + i*Interval,
// whoever sends it and whenever the previous one finished. Latency is
// measured from that due time, so when the server stalls, the operations
// that should have been sent meanwhile are charged with the wait: the
// coordinated omission of a closed-loop client (which politely waits and
// then measures only the service time) is not hidden.
//
// Closed loop (Interval == 0): each client sends its next operation when
// the previous one returns; the due time is the send time.
//
// The phase ends after MaxOps operations (when > 0) or at End (when not
// zero): no operation due at or after End is sent. Next is safe for
// concurrent use.
type Schedule struct {
	Start    time.Time
	Interval time.Duration
	MaxOps   int64
	End      time.Time

	next atomic.Int64
}

// Next claims the next operation. now is the current time (used in closed
// loop); ok is false when the phase is over.
func (s *Schedule) Next(now time.Time) (due time.Time, ok bool) {
	i := s.next.Add(1) - 1
	if s.MaxOps > 0 && i >= s.MaxOps {
		return time.Time{}, false
	}
	if s.Interval > 0 {
		due = s.Start.Add(time.Duration(i) * s.Interval)
	} else {
		due = now
	}
	if !s.End.IsZero() && !due.Before(s.End) {
		return time.Time{}, false
	}
	return due, true
}

// Claimed is how many operations were claimed (including the one that
// found the phase over, once per client).
func (s *Schedule) Claimed() int64 { return s.next.Load() }

// runClient runs one client's loop: claim the next due time, wait for it,
// do the operation, and record its latency from the due time. It returns
// when the schedule is exhausted, when ctx ends, or when stop says so
// (checked before each claim; a hard deadline for draining a backlog).
func runClient(ctx context.Context, s *Schedule, clk Clock, stop func(now time.Time) bool,
	do func(ctx context.Context) (kind int, events int, err error),
	record func(kind int, latency time.Duration, events int, err error),
) {
	for ctx.Err() == nil {
		now := clk.Now()
		if stop != nil && stop(now) {
			return
		}
		due, ok := s.Next(now)
		if !ok {
			return
		}
		if err := clk.SleepUntil(ctx, due); err != nil {
			return
		}
		kind, events, err := do(ctx)
		if ctx.Err() != nil && err != nil {
			return // cut short by the end of the run, not the server's fault
		}
		record(kind, clk.Now().Sub(due), events, err)
	}
}
