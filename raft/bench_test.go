package raft

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/ledgerd/ledger"
)

// BenchmarkClusterAppend: three nodes in one process on loopback TCP
// (the real transport), raft-wal logs fsynced, the ledger's group commit
// on the leader, appends of ~300-byte events:
//
//	go test ./raft -run '^$' -bench ClusterAppend -benchtime 200x      (batch1000: 200 batches)
//	go test ./raft -run '^$' -bench ClusterAppend/single -benchtime 20000x
//
// batch1000: 4 clients (x16: 16), each Append of 1000 events; single32: 32 clients,
// one event per Append. syncstore variants fsync the Pebble store too.
// Reports events/s, the p99 latency of one Append call and the CPU time
// of the whole process (three nodes and the clients) per event: on a
// shared machine the wall-clock figures swing with other load, the CPU
// per event much less.
func BenchmarkClusterAppend(b *testing.B) {
	for _, tc := range []struct {
		name           string
		clients, batch int
		syncStore      bool
	}{
		{"batch1000", 4, 1000, false},
		{"batch1000-syncstore", 4, 1000, true},
		{"batch1000x16", 16, 1000, false},
		{"single32", 32, 1, false},
		{"single32-syncstore", 32, 1, true},
	} {
		b.Run(tc.name, func(b *testing.B) { benchClusterAppend(b, tc.clients, tc.batch, tc.syncStore) })
	}
}

func benchClusterAppend(b *testing.B, clients, batch int, syncStore bool) {
	keys := newClusterKeys(b)
	type member struct {
		node   *Node
		ledger *ledger.Ledger
	}
	var ms []member
	defer func() {
		for _, m := range ms {
			m.ledger.Close(context.Background())
		}
		for i := len(ms) - 1; i >= 0; i-- { // the leader (n1) last
			ms[i].node.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		st, err := ledger.OpenStore(b.TempDir(), ledger.StoreOptions{NoSync: !syncStore})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		n, err := Open(Config{ID: fmt.Sprintf("n%d", i+1), Dir: b.TempDir(), Store: st, RaftAddr: "127.0.0.1:0", Logger: testLogger(), CheckInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		l, err := ledger.New(ledger.Config{Store: st, Origin: "bench", Signer: keys.signer, HMAC: keys.hmac, Committer: n.Committer(), Logger: testLogger()})
		if err != nil {
			n.Close()
			b.Fatal(err)
		}
		ms = append(ms, member{n, l})
	}
	if err := ms[0].node.Bootstrap(); err != nil {
		b.Fatal(err)
	}
	eventually(b, 10*time.Second, "a leader", ms[0].node.IsLeader)
	ctx := context.Background()
	for _, m := range ms[1:] {
		if err := ms[0].node.addVoter(ctx, m.node.ID(), m.node.RaftAddr(), ""); err != nil {
			b.Fatal(err)
		}
	}
	pad := strings.Repeat("x", 170) // brings the encoded leaf to ~300 bytes
	mkEvents := func(c, i int) []ledger.Event {
		evs := make([]ledger.Event, batch)
		for j := range evs {
			evs[j] = ledger.Event{
				ID:      fmt.Sprintf("c%d-%d-%d", c, i, j),
				Actor:   ledger.Actor{ID: "user-1234", Type: "user", IP: "10.1.2.3"},
				Action:  ledger.Action{Type: "update", Resource: "document", ResourceID: pad, Result: "success", Duration: 12},
				Context: ledger.Context{RequestID: "req-1", Environment: "prod", Application: "bench"},
			}
		}
		return evs
	}
	leader := ms[0].ledger
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				evs := mkEvents(c, i)
				t0 := time.Now()
				if _, err := leader.Append(ctx, evs); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*batch), "cpu-us/event")
	// Every node ends with the same tree.
	want := ms[0].node.cfg.Store.State().Size
	eventually(b, 30*time.Second, "followers caught up", func() bool {
		for _, m := range ms {
			if m.node.cfg.Store.State().Size != want {
				return false
			}
		}
		return true
	})
}

// processCPU is the user and system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
