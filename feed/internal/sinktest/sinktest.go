// Package sinktest runs sinks under a feed.Manager for their tests.
package sinktest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/feedtest"
)

// FastDelivery is a Delivery with quick retries for tests.
func FastDelivery(name string, batch int) feed.Delivery {
	return feed.Delivery{Name: name, BatchSize: batch, MinBackoff: feed.Duration(2 * time.Millisecond),
		MaxBackoff: feed.Duration(20 * time.Millisecond), Timeout: feed.Duration(10 * time.Second), AlertAfter: feed.Duration(time.Hour)}
}

// Run starts a Manager with one sink over l; it is closed at the end of
// the test.
func Run(t testing.TB, l *feedtest.Ledger, typ string, d feed.Delivery, s feed.Sink) *feed.Manager {
	t.Helper()
	m, err := feed.NewManager(feed.ManagerConfig{
		Store: l.Store, Committer: l.Ledger.Committer(), LeaderPoll: 10 * time.Millisecond, Seed: 3,
		Sinks:  []feed.SinkSpec{{Type: typ, Delivery: d, Sink: s}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// WaitCursor waits until sink name has delivered everything below want.
func WaitCursor(t testing.TB, l *feedtest.Ledger, m *feed.Manager, name string, want uint64) {
	t.Helper()
	c := func() uint64 {
		v, _, err := feed.ReadCursor(l.Store, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	feedtest.WaitFor(t, 60*time.Second, func() string {
		return fmt.Sprintf("cursor of %s at %d, want %d; status %+v", name, c(), want, m.Status())
	}, func() bool { return c() == want })
}
