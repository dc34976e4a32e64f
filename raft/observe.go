package raft

import (
	"sync"

	"github.com/auditledger/ledgerd/ledger"
)

// kvObservers are the callbacks told about the reserved-table writes the
// FSM applies: packages that keep an in-memory view of their table (the
// field encryption's index of subject keys) learn of other nodes'
// writes this way.
type kvObservers struct {
	mu  sync.RWMutex
	obs []kvObserver
}

type kvObserver struct {
	applied  func(ops []ledger.KV)
	restored func()
}

func (o *kvObservers) add(ob kvObserver) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.obs = append(o.obs, ob)
}

func (o *kvObservers) applied(ops []ledger.KV) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, ob := range o.obs {
		if ob.applied != nil {
			ob.applied(ops)
		}
	}
}

func (o *kvObservers) restored() {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, ob := range o.obs {
		if ob.restored != nil {
			ob.restored()
		}
	}
}

// ObserveKV registers callbacks the FSM calls, on the apply goroutine,
// after each batch of reserved-table writes it applies to the store
// (applied, with the batch's ops; also for a replayed batch the store
// already held) and after a snapshot replaced the store's content
// (restored). They must be quick and must not write through Raft.
// Writes applied before the call are in the store: register first, then
// read the store, and nothing is missed. Its signature is
// fieldcrypt.Options.Watch.
func (n *Node) ObserveKV(applied func(ops []ledger.KV), restored func()) {
	n.fsm.observers.add(kvObserver{applied, restored})
}
