package raft

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
)

// TestSubjectKeysSeenAcrossNodes: a data key one node created reaches
// the other nodes' crypters through the FSM (Node.ObserveKV), so their
// appends of the same subject use it instead of creating a second one;
// a subject new to every node gets exactly one key wherever it is first
// appended.
func TestSubjectKeysSeenAcrossNodes(t *testing.T) {
	c := newCluster(t, 3, nil)
	master := make([]byte, 32)
	rand.Read(master)
	leader := c.waitLeader()
	crypters := map[string]*fieldcrypt.Crypter{}
	for _, tn := range c.nodes {
		crypters[tn.id] = crypterOn(t, tn, master)
	}
	size := uint64(0)
	for i, tn := range c.nodes {
		// Each node in turn appends a subject the previous one created
		// and one of its own.
		evs := []ledger.Event{personal(fmt.Sprintf("e%d", i), fmt.Sprintf("subject-%d", i))}
		if i > 0 {
			evs = append(evs, personal(fmt.Sprintf("e%d-prev", i), fmt.Sprintf("subject-%d", i-1)))
		}
		appendEncrypted(t, tn, crypters[tn.id], evs)
		size += uint64(len(evs))
		c.converge(size)
	}
	for i := range c.nodes {
		s := fmt.Sprintf("subject-%d", i)
		forms, err := crypters[leader.id].StoredForms(s, "actor.id", s)
		if err != nil || len(forms) != 3 { // one key: its v1 form and its two v2 forms
			t.Errorf("%s has %d stored forms (%v), want 3 (one data key)", s, len(forms), err)
		}
	}
}
