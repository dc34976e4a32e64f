package fieldcrypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/auditledger/ledgerd/ledger"
)

// Finding and creating subjects' data keys.
//
// A subject's data key is found through its index entry
// s/k/<lookup>/<id> (keys.go), a Pebble prefix scan. Two things keep that
// scan and the key's replicated write off the append path:
//
//   - subjectIndex: the set of lookups that have an index entry. A
//     subject whose lookup is absent has no data key, known without a
//     scan. It is exact for absence: loaded from the store at start and
//     kept up to date with this Crypter's own writes and, in a cluster,
//     with every replicated write the node applies (Options.Watch).
//     Without a way to see other nodes' writes it is off, and every
//     uncached subject is scanned for as before.
//   - creator: concurrent appends needing new data keys share writes.
//     Appends of the same new subject wait for one creation; different
//     new subjects of concurrent appends go into the next single
//     CommitKV (a group commit: one committer at a time, the others
//     queue for the next write). Every append returns only once the keys
//     its events use are committed.

// subjectIndex is the set of subject lookups (their first 8 bytes) that
// have an index entry in the store. Absent is exact: the subject has no
// data key. Present may be stale (an erased subject stays present): it
// only means "scan to find the key", and a scan finding none leads to a
// new key. One entry per subject key ever created costs about 16 bytes.
type subjectIndex struct {
	loadMu  sync.Mutex   // one reload at a time
	mu      sync.RWMutex // guards the fields below
	set     map[uint64]struct{}
	stale   bool                // the store was replaced: reload before use
	pending map[uint64]struct{} // additions made while a reload scans
}

func newSubjectIndex() *subjectIndex { return &subjectIndex{stale: true} }

// lookupHash is the index's key for a lookup given as the hex component
// of s/k/<lookup>/: its first 8 bytes, or a hash if it is not hex.
func lookupHash(hexLookup []byte) uint64 {
	var b [8]byte
	if len(hexLookup) >= 16 {
		if _, err := hex.Decode(b[:], hexLookup[:16]); err == nil {
			return binary.BigEndian.Uint64(b[:])
		}
	}
	h := fnv.New64a()
	h.Write(hexLookup)
	return h.Sum64()
}

// indexEntryHash returns the lookup hash of an index entry key
// s/k/<lookup>/<id>, or false for another key.
func indexEntryHash(key []byte) (uint64, bool) {
	lookup, _, ok := splitIndexEntry(key)
	if !ok {
		return 0, false
	}
	return lookupHash(lookup), true
}

// splitIndexEntry splits an index entry's key s/k/<lookup>/<id> (the
// id may be missing).
func splitIndexEntry(key []byte) (lookup, id []byte, ok bool) {
	if len(key) <= len(prefixSubject) || !bytes.HasPrefix(key, prefixSubject) {
		return nil, nil, false
	}
	lookup, id, _ = bytes.Cut(key[len(prefixSubject):], []byte{'/'})
	return lookup, id, true
}

// has reports whether h is in the set; known is false while the set
// must be (re)loaded first.
func (x *subjectIndex) has(h uint64) (present, known bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.stale || x.set == nil {
		return false, false
	}
	_, present = x.set[h]
	return present, true
}

// add records index entries that were just written (or applied).
func (x *subjectIndex) add(hs ...uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, h := range hs {
		if x.set != nil {
			x.set[h] = struct{}{}
		}
		if x.pending != nil {
			x.pending[h] = struct{}{}
		}
	}
}

// observe records the index entries a replicated write sets.
func (x *subjectIndex) observe(ops []ledger.KV) {
	var hs []uint64
	for _, op := range ops {
		if op.Delete {
			continue // a stale "present" only costs a scan
		}
		if h, ok := indexEntryHash(op.Key); ok {
			hs = append(hs, h)
		}
	}
	if len(hs) > 0 {
		x.add(hs...)
	}
}

// invalidate makes the next use reload the set (the store's content was
// replaced, e.g. by a Raft snapshot).
func (x *subjectIndex) invalidate() {
	x.mu.Lock()
	x.stale = true
	x.mu.Unlock()
}

// load (re)reads the set from the store if it is stale. Additions made
// during the scan are kept: they are either in the scan or in pending.
func (x *subjectIndex) load(kv KVStore) error {
	x.loadMu.Lock()
	defer x.loadMu.Unlock()
	x.mu.Lock()
	if !x.stale && x.set != nil {
		x.mu.Unlock()
		return nil
	}
	x.stale = false // an invalidation from now on is seen after the scan
	x.pending = make(map[uint64]struct{})
	x.mu.Unlock()
	set := make(map[uint64]struct{})
	err := kv.ScanKV(prefixSubject, func(k, _ []byte) error {
		if h, ok := indexEntryHash(k); ok {
			set[h] = struct{}{}
		}
		return nil
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	pending := x.pending
	x.pending = nil
	if err != nil {
		x.stale = true
		return err
	}
	for h := range pending {
		set[h] = struct{}{}
	}
	x.set = set
	return nil
}

// size is the number of lookups in the set.
func (x *subjectIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.set)
}

// creation is one subject's data key being created (or found again)
// by a batch.
type creation struct {
	key   creationKey
	fk    *fieldKey
	batch *createBatch
	dk    *dataKey // set before batch.done closes, unless err
	err   error
}

type creationKey struct{ fieldKey, subject string }

// createBatch is the creations one CommitKV writes.
type createBatch struct {
	items []*creation
	done  chan struct{} // closed when every item has its dk or err
}

// creator coalesces the data key creations of concurrent appends.
type creator struct {
	mu         sync.Mutex
	inflight   map[creationKey]*creation // not yet done
	next       *createBatch              // gathering; nil when none
	committing bool                      // a batch is being written
	idle       chan struct{}             // closed when the write ends
}

func newCreator() *creator {
	return &creator{inflight: make(map[creationKey]*creation), idle: make(chan struct{})}
}

// lookupSubjectKey returns subject's data key under fk from the store,
// or nil when it has none; the index spares the scan of a subject
// known to have none.
func (c *Crypter) lookupSubjectKey(fk *fieldKey, subject string) (*dataKey, error) {
	l := fk.subjectLookupRaw(subject)
	if c.index != nil {
		present, known := c.index.has(binary.BigEndian.Uint64(l[:8]))
		if !known {
			if err := c.index.load(c.kv); err != nil {
				return nil, err
			}
			present, known = c.index.has(binary.BigEndian.Uint64(l[:8]))
		}
		if known && !present {
			return nil, nil
		}
	}
	hl := hex.EncodeToString(l[:])
	if dk := c.learnedKey(hl); dk != nil {
		return dk, nil
	}
	return c.findSubjectKey(subjectPrefix(hl))
}

// createSubjectKeys returns a data key under fk for each subject, which
// had none when looked up: created by the next batch (or an earlier one
// already under way for the same subject), committed before it returns.
func (c *Crypter) createSubjectKeys(ctx context.Context, fk *fieldKey, subjects []string) (map[string]*dataKey, error) {
	cr := c.creator
	mine := make([]*creation, 0, len(subjects))
	cr.mu.Lock()
	for _, s := range subjects {
		k := creationKey{fk.id, s}
		x := cr.inflight[k]
		if x == nil {
			if cr.next == nil {
				cr.next = &createBatch{done: make(chan struct{})}
			}
			x = &creation{key: k, fk: fk, batch: cr.next}
			cr.next.items = append(cr.next.items, x)
			cr.inflight[k] = x
		}
		mine = append(mine, x)
	}
	cr.mu.Unlock()
	var last *createBatch
	for _, x := range mine {
		if x.batch == last {
			continue
		}
		last = x.batch
		if err := c.awaitBatch(ctx, x.batch); err != nil {
			return nil, err
		}
	}
	out := make(map[string]*dataKey, len(mine))
	for _, x := range mine {
		if x.err != nil {
			return nil, x.err
		}
		out[x.key.subject] = x.dk
	}
	return out, nil
}

// awaitBatch returns once b is written: it writes b itself when no
// other write is under way (together with every creation queued since),
// else waits for that write to end and tries again.
func (c *Crypter) awaitBatch(ctx context.Context, b *createBatch) error {
	cr := c.creator
	for {
		cr.mu.Lock()
		select {
		case <-b.done:
			cr.mu.Unlock()
			return nil
		default:
		}
		if !cr.committing {
			// b is not done and no write is under way (a write closes
			// its batch's done before it ends, both seen under mu), so b
			// is still gathering: cr.next.
			todo := cr.next
			cr.next = nil
			cr.committing = true
			cr.mu.Unlock()
			c.commitBatch(ctx, todo)
			cr.mu.Lock()
			cr.committing = false
			close(cr.idle)
			cr.idle = make(chan struct{})
			cr.mu.Unlock()
			continue
		}
		idle := cr.idle
		cr.mu.Unlock()
		select {
		case <-b.done:
			return nil
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("fieldcrypt: waiting for new data keys: %w", ctx.Err())
		}
	}
}

// commitBatch finds or creates each creation's data key, writes the new
// ones in one CommitKV (or queues them, aheadCommitter) and completes the
// batch. Rotations and erasures wait meanwhile (createMu).
func (c *Crypter) commitBatch(ctx context.Context, b *createBatch) {
	defer func() {
		c.creator.mu.Lock()
		for _, x := range b.items {
			if c.creator.inflight[x.key] == x {
				delete(c.creator.inflight, x.key)
			}
		}
		c.creator.mu.Unlock()
		close(b.done)
	}()
	c.createMu.Lock()
	defer c.createMu.Unlock()
	c.mu.RLock()
	gen, cur := c.gen, c.current
	c.mu.RUnlock()
	var ops []ledger.KV
	var made []*creation
	var hashes []uint64
	for _, x := range b.items {
		s := x.key.subject
		// An earlier batch may have made it since it was looked up.
		if x.fk == cur {
			c.mu.RLock()
			x.dk = c.bySubject[s]
			c.mu.RUnlock()
			if x.dk != nil {
				continue
			}
		}
		if x.dk, x.err = c.lookupSubjectKey(x.fk, s); x.err != nil || x.dk != nil {
			continue
		}
		id := newDataKeyID()
		raw := make([]byte, 32)
		rand.Read(raw)
		if x.dk, x.err = openDataKey(id, raw); x.err != nil {
			continue
		}
		l := x.fk.subjectLookupRaw(s)
		ds := slot(prefixDataKey, id)
		ops = append(ops,
			ledger.KV{Key: ds, Value: wrap(&x.fk.aesKey, raw, ds)},
			ledger.KV{Key: append(subjectPrefix(hex.EncodeToString(l[:])), id...), Value: []byte{}})
		made = append(made, x)
		hashes = append(hashes, binary.BigEndian.Uint64(l[:8]))
	}
	if len(ops) > 0 {
		commit := c.commit.CommitKV
		a, ahead := c.commit.(aheadCommitter)
		if ahead {
			commit = a.CommitKVAhead
		}
		if err := commit(ctx, ops); err != nil {
			for _, x := range made {
				x.dk, x.err = nil, fmt.Errorf("fieldcrypt: store data keys: %w", err)
			}
			return
		}
		if c.index != nil {
			c.index.add(hashes...)
		}
	}
	for _, x := range b.items {
		if x.dk != nil && x.fk == cur {
			c.cacheNewDataKey(gen, x.key.subject, x.dk)
		}
	}
}
