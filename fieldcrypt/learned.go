package fieldcrypt

import (
	"bytes"

	"github.com/auditledger/ledgerd/ledger"
)

// Data keys learnt from replicated writes. In a cluster a subject's data
// key is created by the node that first seals one of its events; the
// other nodes apply the write (a wrapped key s/d/<id> and its index
// entry s/k/<lookup>/<id>, in one command) and, without this, found the
// key by a store scan, a read and an unwrap the first time they met the
// subject: 7% of a follower's CPU in a 15 s batch benchmark with 50,000
// users. learn keeps the key's raw form by lookup instead (bounded like
// the second cache tier); the generation change of a rotation or erasure
// empties it with the other caches.

// learn records the data keys that ops create, unwrapped with the field
// key that wrapped them. It runs in the node's apply path, after the
// write is in the store.
func (c *Crypter) learn(ops []ledger.KV) {
	var wrapped map[string][]byte // data key id → wrapped key, in ops
	for _, op := range ops {
		if op.Delete && bytes.HasPrefix(op.Key, prefixDataKey) {
			c.mu.Lock()
			clear(c.learned) // an erasure: rare, and the generation follows
			c.mu.Unlock()
			return
		}
		if !op.Delete && bytes.HasPrefix(op.Key, prefixDataKey) {
			if wrapped == nil {
				wrapped = make(map[string][]byte)
			}
			wrapped[string(op.Key[len(prefixDataKey):])] = op.Value
		}
	}
	if wrapped == nil {
		return
	}
	for _, op := range ops {
		if op.Delete || !bytes.HasPrefix(op.Key, prefixSubject) {
			continue
		}
		hexLookup, rawID, ok := splitIndexEntry(op.Key)
		if !ok || len(hexLookup) == 0 {
			continue
		}
		id := string(rawID)
		w, ok := wrapped[id]
		if !ok {
			continue
		}
		lookup, ok := lookupTierKey(hexLookup)
		if !ok {
			continue
		}
		c.mu.Lock()
		if c.learned == nil { // not loaded yet: the first use scans
			c.mu.Unlock()
			return
		}
		raw, _, err := unwrapWith(w, slot(prefixDataKey, id), c.fieldKeyLocked)
		if err == nil {
			// Of two keys made at once for one subject, keep the first in
			// key order, as findSubjectKey picks.
			if old, ok := c.learned[lookup]; !ok || id < string(old.id[:]) {
				if dk, err := openDataKey(id, raw); err == nil {
					if ck, ok := coldOf(dk); ok {
						putCold(c.learned, lookup, ck)
					}
				}
			}
		}
		c.mu.Unlock()
	}
}

// learnedKey opens the data key learnt for a subject's hex lookup, or
// returns nil.
func (c *Crypter) learnedKey(hexLookup string) *dataKey {
	c.mu.RLock()
	k, ok := lookupTierKey([]byte(hexLookup))
	if !ok {
		c.mu.RUnlock()
		return nil
	}
	ck, ok := c.learned[k]
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	return ck.open()
}
