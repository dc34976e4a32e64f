package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// TestSIGTERMFinishesInFlightAppends stops ledgerd with SIGTERM under
// load: it must exit 0, and everything it acknowledged must be there
// after a restart.
func TestSIGTERMFinishesInFlightAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ledgerd")
	}
	tmp := t.TempDir()
	bin := buildLedgerd(t, tmp)
	dataDir := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	p := startLedgerd(t, bin, dataDir, addr)
	c := dial(t, addr, dataDir)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("t%d-%d", w, i)
				r, err := c.Append(ctx, &pb.AppendRequest{Event: &pb.Event{Id: id, Actor: &pb.Actor{Id: "svc"}, Action: &pb.Action{Type: "write", Resource: "doc", Result: "success"}}})
				if err != nil {
					return
				}
				mu.Lock()
				acked[id] = r.Result.Index
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("ledgerd did not exit cleanly on SIGTERM: %v\n%s", err, p.log)
	}
	startLedgerd(t, bin, dataDir, addr)
	c = dial(t, addr, dataDir)
	for id, idx := range acked {
		r, err := c.GetEntry(context.Background(), &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Id{Id: id}})
		if err != nil || r.Entry.Index != idx {
			t.Fatalf("acknowledged %s at %d: after restart %v, %v", id, idx, r, err)
		}
	}
	t.Logf("%d acknowledged appends all present after SIGTERM and restart", len(acked))
}
