package fieldcrypt

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditledger/ledgerd/internal/sealed"
	"github.com/auditledger/ledgerd/ledger"
)

// KVStore reads the replicated reserved tables: a *ledger.Store. Key
// state read at one KVWrites count holds until the count changes (the
// store's last applied batch, by contrast, changes with every append).
type KVStore interface {
	Get(key []byte) ([]byte, error)
	ScanKV(prefix []byte, fn func(key, value []byte) error) error
	KVWrites() uint64
}

// KVCommitter replicates writes to the reserved tables: the ledger's
// Committer.
type KVCommitter interface {
	CommitKV(ctx context.Context, ops []ledger.KV) error
}

// aheadCommitter is a KVCommitter that can also queue writes for its
// next batch (ledger.LocalCommitter): written and synced with the leaves
// appended next, and not visible to the store's readers before. New
// subjects' data keys go that way, so an append of a new subject waits
// for no key write of its own (concurrent batch appends of new subjects
// did, behind the store's apply lock: ~7% of their handlers' time) and
// costs no extra commit. FlushKVAhead writes the queue now.
type aheadCommitter interface {
	CommitKVAhead(ctx context.Context, ops []ledger.KV) error
	FlushKVAhead(ctx context.Context) error
}

// Options configure a Crypter.
type Options struct {
	Config Config
	Master *MasterKeys
	Store  KVStore
	Commit KVCommitter
	Logger *slog.Logger
	Now    func() time.Time
	// CommitTimeout bounds the key writes Transform makes (a first field
	// key, data keys of new subjects). Default 30s.
	CommitTimeout time.Duration
	// Watch, when set, registers the callbacks the node calls for every
	// batch of replicated reserved-table writes it applies to Store
	// (applied, with the batch's ops) and whenever Store's content is
	// replaced (restored, e.g. by a Raft snapshot). New calls it before
	// it reads the store. With it, or with a ledger.LocalCommitter as
	// Commit (a single node, whose writes all come through here), the
	// Crypter knows which subjects have data keys without a store scan
	// per new subject; without either, it scans.
	Watch func(applied func(ops []ledger.KV), restored func())
}

// maxCached bounds each key cache. A data key with its ciphers and
// cached forms takes about a kilobyte, and the GC marks every cached key
// in every cycle: with 32k keys cached, marking cost 2.7 µs per
// batch-appended event against 0.8 with encryption off, and more than
// the reloads from the second tier that a smaller first tier causes
// (which cost ~2 µs each). A full cache drops about half its entries,
// picked at random: hot keys come back at once, instead of every key at
// the same time as when the cache was emptied.
const maxCached = 1 << 12

// maxCold bounds the second tier of the subject cache: a subject's data
// key id, raw key and derived v2 keys (~130 bytes, no pointers: ~8 MiB
// when full), so that a subject evicted from the first tier comes back
// by making its ciphers (~0.5 µs) instead of a store scan and an unwrap.
const maxCold = 1 << 16

// tierKey names a subject in the second tier, or a subject's lookup in
// the learnt keys, without a pointer: the tiers' maps then hold none, and
// the GC does not look inside them. For a subject it is two maphash
// values under the Crypter's random seeds (an accidental collision among
// 65k subjects has a probability of about 2^-97, and no client can aim
// for one without the seeds); a lookup is already an HMAC, of which it
// is the first 16 bytes.
type tierKey [2]uint64

// coldKey is a data key in the second tier or the learnt keys.
type coldKey struct {
	id  [dataKeyIDLen]byte
	raw [32]byte
	v2  [64]byte
	// The key's recent reopenings from the second tier (admit.go).
	reopened uint8
	epoch    uint16
}

// putCold remembers a key in a tier (the second cache tier or the learnt
// keys), dropping half of a full tier first. The caller holds c.mu.
func putCold(tier map[tierKey]coldKey, k tierKey, ck coldKey) {
	if len(tier) >= maxCold {
		evictHalf(tier)
	}
	tier[k] = ck
}

// coldOf is dk in a tier's form. Data key ids all have dataKeyIDLen
// characters; a key with another is left to the store (false).
func coldOf(dk *dataKey) (coldKey, bool) {
	if len(dk.id) != dataKeyIDLen {
		return coldKey{}, false
	}
	ck := coldKey{raw: dk.raw, v2: dk.v2}
	copy(ck.id[:], dk.id)
	return ck, true
}

// open makes the key's ciphers again.
func (ck *coldKey) open() *dataKey {
	dk := &dataKey{id: string(ck.id[:]), raw: ck.raw, v2: ck.v2}
	if dk.init() != nil {
		return nil // cannot happen: the key opened before
	}
	return dk
}

// subjectTierKey is subject's key in the second tier.
func (c *Crypter) subjectTierKey(subject string) tierKey {
	return tierKey{maphash.String(c.tierSeeds[0], subject), maphash.String(c.tierSeeds[1], subject)}
}

// lookupTierKey is a hex subject lookup's key in the learnt keys.
func lookupTierKey(hexLookup []byte) (tierKey, bool) {
	var raw [16]byte
	if len(hexLookup) != 2*len(raw) {
		return tierKey{}, false
	}
	if _, err := hex.Decode(raw[:], hexLookup); err != nil {
		return tierKey{}, false
	}
	return tierKey{binary.BigEndian.Uint64(raw[:8]), binary.BigEndian.Uint64(raw[8:])}, true
}

// evictHalf deletes about half of m's entries, in map (random) order.
func evictHalf[K comparable, V any](m map[K]V) {
	drop := len(m) / 2
	for k := range m {
		if drop == 0 {
			return
		}
		delete(m, k)
		drop--
	}
}

// Crypter encrypts events before they are sealed (Transform, the
// ledger's Config.Transform), decrypts them for readers (Reveal), and
// manages field keys (Rotate, Keys) and per-subject data keys (Erase).
// Key state lives in the replicated reserved table (see keys.go); a
// Crypter caches unwrapped keys and flushes its caches whenever another
// rotation or erasure is applied (it checks the generation key whenever
// the store has applied anything new). Safe for concurrent use.
type Crypter struct {
	cfg     *compiled
	master  *MasterKeys
	kv      KVStore
	commit  KVCommitter
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration

	mu        sync.RWMutex // guards the fields below
	loaded    bool
	checkedAt uint64 // store's KVWrites when gen was read
	gen       string
	fields    map[string]*fieldKey // every field key, by id (lookup nil: not unwrapped)
	current   *fieldKey            // newest field key; nil when none or not unwrapped
	newestID  string
	bySubject map[string]*dataKey // subject → its data key under current
	cold      map[tierKey]coldKey // subject → its key's raw form (more subjects)
	// learned holds data keys other nodes created, seen in replicated
	// writes, by the hex lookup of their subject: the first use of such a
	// subject on this node then needs no store scan (learned.go).
	learned   map[tierKey]coldKey
	tierSeeds [2]maphash.Seed     // of subjectTierKey
	byID      map[string]*dataKey // data key id → key
	erased    map[string]bool     // data key ids known erased

	createMu sync.Mutex    // serialises key writes on this node
	creator  *creator      // coalesces data key creations (subjects.go)
	index    *subjectIndex // lookups with a data key; nil: scan (subjects.go)
	formUse  formUse       // which fields' forms are worth caching (formuse.go)
	events   atomic.Uint64 // transformed, for the epochs of admit.go
	// metaClasses caches metadata keys' classes ("" for none); the
	// configuration never changes, so neither do they.
	metaClasses atomic.Pointer[map[string]string]
}

// New returns a Crypter. It checks that the master key opens the newest
// field key, if any (a node started with the wrong key refuses to run).
func New(o Options) (*Crypter, error) {
	cc, err := o.Config.compile()
	if err != nil {
		return nil, err
	}
	if o.Master == nil || o.Store == nil || o.Commit == nil {
		return nil, errors.New("fieldcrypt: Options need Master, Store and Commit")
	}
	c := &Crypter{cfg: cc, master: o.Master, kv: o.Store, commit: o.Commit, log: o.Logger, now: o.Now, timeout: o.CommitTimeout,
		tierSeeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	c.creator = newCreator()
	_, local := o.Commit.(ledger.LocalCommitter)
	if o.Watch != nil || local {
		c.index = newSubjectIndex()
		if o.Watch != nil {
			o.Watch(func(ops []ledger.KV) {
				c.index.observe(ops)
				c.learn(ops)
			}, c.index.invalidate)
		}
		if err := c.index.load(c.kv); err != nil {
			return nil, err
		}
	}
	if err := c.refresh(); err != nil {
		return nil, err
	}
	if c.newestID != "" && c.current == nil {
		return nil, fmt.Errorf("%w: the master key (id %s) does not open the current field key %s: wrong AUDIT_ENCRYPTION_KEY, or its predecessor is missing from oldKeyFiles", ErrWrongKey, o.Master.CurrentID(), c.newestID)
	}
	return c, nil
}

// SubjectsEnabled reports whether events get per-subject data keys.
func (c *Crypter) SubjectsEnabled() bool { return c.cfg.subject != nil }

// refresh reloads the key state when a rotation or erasure happened
// since the last look.
func (c *Crypter) refresh() error {
	applied := c.kv.KVWrites()
	c.mu.RLock()
	fresh := c.loaded && applied == c.checkedAt
	c.mu.RUnlock()
	if fresh {
		return nil
	}
	g, err := c.kv.Get(keyGeneration)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && string(g) == c.gen {
		c.checkedAt = max(c.checkedAt, applied)
		return nil
	}
	fields := make(map[string]*fieldKey)
	var newest string
	err = c.kv.ScanKV(prefixFieldKey, func(k, v []byte) error {
		id := string(k[len(prefixFieldKey):])
		if !validKeyID(id) || id[0] != 'f' {
			return fmt.Errorf("%w: field key slot %q", ledger.ErrCorrupt, k)
		}
		newest = id
		if old := c.fields[id]; old != nil && old.lookup != nil && old.wrappedBy == wrapperOf(v) {
			fields[id] = old // keys never change under an id
			return nil
		}
		raw, by, err := unwrapWith(v, k, c.masterKey)
		if err != nil {
			c.log.Error("fieldcrypt: cannot open a field key", "key", id, "err", err)
			fields[id] = &fieldKey{aesKey: aesKey{id: id}, created: fieldKeyTime(id), wrappedBy: by}
			return nil
		}
		fk, err := openFieldKey(id, raw, by)
		if err != nil {
			return err
		}
		fields[id] = fk
		return nil
	})
	if err != nil {
		return err
	}
	c.fields, c.newestID, c.current = fields, newest, nil
	if fk := fields[newest]; fk != nil && fk.lookup != nil {
		c.current = fk
	}
	c.bySubject = make(map[string]*dataKey)
	c.cold = make(map[tierKey]coldKey)
	c.learned = make(map[tierKey]coldKey)
	c.byID = make(map[string]*dataKey)
	c.erased = make(map[string]bool)
	c.gen, c.checkedAt, c.loaded = string(g), applied, true
	return nil
}

func (c *Crypter) masterKey(id string) *aesKey { return c.master.byID[id] }

// fieldKeyByID is for unwrapping data keys; the caller holds mu.
func (c *Crypter) fieldKeyLocked(id string) *aesKey {
	if fk := c.fields[id]; fk != nil && fk.lookup != nil {
		return &fk.aesKey
	}
	return nil
}

// awaitLocal waits until this node's store holds key, written by a
// CommitKV that returned: at once on a single node; on a cluster
// follower, once Raft has delivered the write here. Keys awaited are
// unique to their write and never deleted (a new field key, an erasure
// record), so a later write cannot hide the one awaited.
func (c *Crypter) awaitLocal(ctx context.Context, key []byte) error {
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		_, err := c.kv.Get(key)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("fieldcrypt: waiting for this node to apply the key change: %w", ctx.Err())
		}
	}
}

func newGeneration() []byte {
	g := make([]byte, 16)
	rand.Read(g)
	return g
}

// currentKey returns the current field key, creating the first one when
// the ledger has none.
func (c *Crypter) currentKey(ctx context.Context) (*fieldKey, error) {
	if err := c.refresh(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	cur, newest := c.current, c.newestID
	c.mu.RUnlock()
	if cur != nil {
		return cur, nil
	}
	if newest != "" {
		return nil, fmt.Errorf("%w: the current field key %s", ErrWrongKey, newest)
	}
	if _, err := c.Rotate(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	cur = c.current
	c.mu.RUnlock()
	if cur == nil {
		return nil, fmt.Errorf("%w: the new field key", ErrWrongKey)
	}
	return cur, nil
}

// KeyInfo describes a field key.
type KeyInfo struct {
	ID        string
	Created   time.Time
	WrappedBy string // master key id
	Current   bool
	Usable    bool // a configured master key opens it
}

// Rotate makes a new field key the current one: new events are
// encrypted under it (and subjects get new data keys wrapped by it);
// older keys keep decrypting. Field keys wrapped by an old master key
// are re-wrapped by the current one in the same write, so after a master
// key change one rotation lets the old master key be retired.
func (c *Crypter) Rotate(ctx context.Context) (KeyInfo, error) {
	c.createMu.Lock()
	defer c.createMu.Unlock()
	if err := c.refresh(); err != nil {
		return KeyInfo{}, err
	}
	now := c.now()
	id := newFieldKeyID(now)
	c.mu.RLock()
	if c.newestID >= id { // clock behind the newest key: sort after it
		id = newFieldKeyID(fieldKeyTime(c.newestID).Add(time.Nanosecond))
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	ops := []ledger.KV{{Key: slot(prefixFieldKey, id), Value: wrap(c.master.current, raw, slot(prefixFieldKey, id))}}
	for fid, fk := range c.fields {
		if fk.wrappedBy == c.master.CurrentID() {
			continue
		}
		s := slot(prefixFieldKey, fid)
		blob, err := c.kv.Get(s)
		if err != nil {
			c.mu.RUnlock()
			return KeyInfo{}, err
		}
		old, _, err := unwrapWith(blob, s, c.masterKey)
		if err != nil {
			c.mu.RUnlock()
			return KeyInfo{}, fmt.Errorf("fieldcrypt: re-wrap %s: %w", fid, err)
		}
		ops = append(ops, ledger.KV{Key: s, Value: wrap(c.master.current, old, s)})
	}
	c.mu.RUnlock()
	ops = append(ops, ledger.KV{Key: keyGeneration, Value: newGeneration()})
	if err := c.commit.CommitKV(ctx, ops); err != nil {
		return KeyInfo{}, fmt.Errorf("fieldcrypt: store field key: %w", err)
	}
	if err := c.awaitLocal(ctx, slot(prefixFieldKey, id)); err != nil {
		return KeyInfo{}, err
	}
	if err := c.refresh(); err != nil {
		return KeyInfo{}, err
	}
	c.log.Info("fieldcrypt: new field key", "key", id, "wrappedBy", c.master.CurrentID(), "rewrapped", len(ops)-2)
	return KeyInfo{ID: id, Created: fieldKeyTime(id), WrappedBy: c.master.CurrentID(), Current: true, Usable: true}, nil
}

// Keys lists the field keys, oldest first.
func (c *Crypter) Keys() ([]KeyInfo, error) {
	if err := c.refresh(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]KeyInfo, 0, len(c.fields))
	for id, fk := range c.fields {
		out = append(out, KeyInfo{ID: id, Created: fk.created, WrappedBy: fk.wrappedBy, Current: id == c.newestID, Usable: fk.lookup != nil})
	}
	slices.SortFunc(out, func(a, b KeyInfo) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out, nil
}

// MasterKeyID is the id of the master key in use.
func (c *Crypter) MasterKeyID() string { return c.master.CurrentID() }

// loadDataKey reads and unwraps a data key; nil, nil when it is gone.
func (c *Crypter) loadDataKey(id string) (*dataKey, error) {
	s := slot(prefixDataKey, id)
	blob, err := c.kv.Get(s)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	raw, _, err := unwrapWith(blob, s, c.fieldKeyLocked)
	c.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return openDataKey(id, raw)
}

// cacheDataKey remembers dk if no rotation or erasure happened since gen
// was read.
func (c *Crypter) cacheDataKey(gen, subject string, dk *dataKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.cacheDataKeyLocked(subject, dk)
	}
}

func (c *Crypter) cacheDataKeyLocked(subject string, dk *dataKey) {
	c.cacheByIDLocked(dk)
	if subject == "" {
		return
	}
	if len(c.bySubject) >= maxCached {
		evictHalf(c.bySubject)
	}
	c.bySubject[subject] = dk
	k := c.subjectTierKey(subject)
	if _, ok := c.cold[k]; !ok {
		if ck, ok := coldOf(dk); ok {
			putCold(c.cold, k, ck)
		}
	}
}

// cacheByIDLocked remembers dk by its id. The caller holds c.mu.
func (c *Crypter) cacheByIDLocked(dk *dataKey) {
	if len(c.byID) >= maxCached {
		evictHalf(c.byID)
	}
	c.byID[dk.id] = dk
}

// coldSubjectKey opens subject's data key from the second tier, or
// returns nil when it is not there.
func (c *Crypter) coldSubjectKey(gen, subject string) *dataKey {
	c.mu.RLock()
	ck, ok := c.cold[c.subjectTierKey(subject)]
	ok = ok && c.gen == gen
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	return ck.open()
}

// subjectKeys returns a data key under the current field key for each
// subject, creating (and committing, in one write) those that have none.
func (c *Crypter) subjectKeys(ctx context.Context, cur *fieldKey, subjects []string) (map[string]*dataKey, error) {
	out := make(map[string]*dataKey, len(subjects))
	var missing []string
	c.mu.RLock()
	gen := c.gen
	for _, s := range subjects {
		if dk := c.bySubject[s]; dk != nil {
			out[s] = dk
		} else {
			missing = append(missing, s)
		}
	}
	c.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	var create, reopened []string
	for _, s := range missing {
		if dk := c.coldSubjectKey(gen, s); dk != nil {
			out[s] = dk
			reopened = append(reopened, s)
			continue
		}
		dk, err := c.lookupSubjectKey(cur, s)
		if err != nil {
			return nil, err
		}
		if dk == nil {
			create = append(create, s)
			continue
		}
		out[s] = dk
		c.cacheDataKey(gen, s, dk)
	}
	if len(reopened) > 0 {
		c.admit(gen, reopened, out)
	}
	if len(create) == 0 {
		return out, nil
	}
	made, err := c.createSubjectKeys(ctx, cur, create)
	if err != nil {
		return nil, err
	}
	for s, dk := range made {
		out[s] = dk
	}
	return out, nil
}

// findSubjectKey looks in the store for a data key with index entries
// under p (subjectPrefix of a subject's lookup). Of several (two nodes
// of a cluster created one each at once), the first in key order that
// opens is the subject's.
func (c *Crypter) findSubjectKey(p []byte) (*dataKey, error) {
	var ids []string
	if err := c.kv.ScanKV(p, func(k, _ []byte) error {
		ids = append(ids, string(k[len(p):]))
		return nil
	}); err != nil {
		return nil, err
	}
	for _, id := range ids {
		dk, err := c.loadDataKey(id)
		if err != nil {
			return nil, err
		}
		if dk != nil {
			return dk, nil
		}
	}
	return nil, nil
}

// fieldSet is what Transform encrypts in one event field.
func (c *Crypter) classOf(name string, meta bool) (class string, ok bool) {
	var sens, pers bool
	if meta {
		sens, pers = c.cfg.sensitive.metadata(name), c.cfg.personal.metadata(name)
	} else {
		sens, pers = c.cfg.sensitive.hasField(name), c.cfg.personal.hasField(name)
	}
	switch {
	case sens:
		return ClassSensitive, true
	case pers:
		return ClassPersonal, true
	}
	return "", false
}

// Transform encrypts the configured fields of events and returns the
// encrypted copies (TransformEach, collected). Events with a data
// subject have every encrypted field under the subject's data key (so an
// erasure covers them); events without one use the current field key.
func (c *Crypter) Transform(events []ledger.Event) ([]ledger.Event, error) {
	out := make([]ledger.Event, len(events))
	err := c.TransformEach(events, func(i int, e *ledger.Event) error {
		out[i] = *e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TransformEach encrypts the configured fields of events, as Transform,
// and hands each encrypted event to seal in turn (valid only during the
// call), stopping at seal's first error: the ledger's Config.Transform.
// It does not modify events.
func (c *Crypter) TransformEach(events []ledger.Event, seal func(i int, e *ledger.Event) error) error {
	// Refuse what the ledger would refuse anyway before any key is
	// written: bad input changes nothing. Plaintext sizes are a lower
	// bound of the encoded, encrypted sizes.
	total := 0
	var sealMeta []bool // events with a metadata value to encrypt; nil: none
	for i := range events {
		n, meta := c.measure(&events[i])
		if meta {
			if sealMeta == nil {
				sealMeta = make([]bool, len(events))
			}
			sealMeta[i] = true
		}
		if n > ledger.MaxEventBytes {
			return fmt.Errorf("%w: event %d is more than %d bytes encoded; at most %d", ledger.ErrTooLarge, i, n, ledger.MaxEventBytes)
		}
		total += n
	}
	if total > ledger.MaxBatchBytes {
		return fmt.Errorf("%w: batch is more than %d bytes encoded; at most %d", ledger.ErrTooLarge, total, ledger.MaxBatchBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cur, err := c.currentKey(ctx)
	if err != nil {
		return err
	}
	// The data key of each event's subject: from the cache under one
	// lock, the rest looked up or created together.
	var dks []*dataKey
	if c.cfg.subject != nil {
		dks = make([]*dataKey, len(events))
		var missing []string
		var seen map[string]bool
		c.mu.RLock()
		for i := range events {
			s := c.cfg.subject(&events[i])
			if s == "" {
				continue
			}
			if dks[i] = c.bySubject[s]; dks[i] == nil && !seen[s] {
				if seen == nil {
					seen = make(map[string]bool)
				}
				seen[s] = true
				missing = append(missing, s)
			}
		}
		c.mu.RUnlock()
		if len(missing) > 0 {
			keys, err := c.subjectKeys(ctx, cur, missing)
			if err != nil {
				return err
			}
			for i := range events {
				if dks[i] == nil {
					dks[i] = keys[c.cfg.subject(&events[i])]
				}
			}
		}
	}
	c.events.Add(uint64(len(events)))
	e := new(ledger.Event) // one for the batch: its address goes to f.get, and would escape
	var rnd nonces
	var sl sealer
	var fb formBatch
	tally := c.formUse.start()
	defer c.formUse.finish(&tally)
	for i := range events {
		*e = events[i]
		var dk *dataKey
		if dks != nil {
			dk = dks[i]
		}
		named := false // a v2 field of this event names dk
		fb.begin(dk)
		for j := range c.cfg.plan {
			f := &c.cfg.plan[j]
			p := f.get(e)
			if *p == "" {
				continue
			}
			switch {
			case dk == nil:
				*p = sl.seal(cur.aead, f.class, cur.id, f.aad, *p, rnd.next())
			case f.searchable:
				c.searchableForm(&sl, &fb, &tally, f, p, named)
				named = true
			default:
				*p = sl.seal(dk.aead(), f.class, dk.id, f.aad, *p, rnd.next())
			}
		}
		fb.flush()
		if sealMeta != nil && sealMeta[i] {
			var m map[string]string
			for k, v := range e.Action.Metadata {
				class, ok := c.metaClass(k)
				if !ok || v == "" {
					continue
				}
				if m == nil {
					m = maps.Clone(e.Action.Metadata)
				}
				key, keyID := cur.aead, cur.id
				if dk != nil {
					key, keyID = dk.aead(), dk.id
				}
				m[k] = sl.seal(key, class, keyID, aad(class, "metadata."+k), v, rnd.next())
			}
			if m != nil {
				e.Action.Metadata = m
			}
		}
		if err := seal(i, e); err != nil {
			return err
		}
	}
	return nil
}

// searchableForm sets *p to the deterministic (v2) stored form of its
// value in field f under the event's data key (fb's), from the key's
// cached forms unless the field's values rarely repeat (formuse.go);
// a form made to cache is set when fb flushes. keyless: an earlier field
// of the event names the key.
func (c *Crypter) searchableForm(sl *sealer, fb *formBatch, t *formTally, f *plannedField, p *string, keyless bool) {
	if !c.formUse.use(t, f.index) {
		*p = sl.sealV2(fb.dk, f.aad, *p, keyless)
		return
	}
	if s, ok := fb.get(f.index, *p, keyless); ok {
		t.hits[f.index]++
		*p = s
		return
	}
	t.misses[f.index]++
	fb.add(p, f.index, f.aad, *p, keyless)
}

// measure returns a lower bound of the encoded size of e's leaf, and
// whether e has a metadata value to encrypt.
func (c *Crypter) measure(e *ledger.Event) (n int, meta bool) {
	n = stringFieldsSize(e)
	for k, v := range e.Action.Metadata {
		n += len(k) + len(v)
		if c.cfg.anyMeta && v != "" && !meta {
			_, meta = c.metaClass(k)
		}
	}
	return n, meta
}

// stringFieldsSize is the length of every string field of e (those of
// allStringFields, spelled out: TestStringFieldsSize checks they are the
// same; calling their getters cost Transform 7% of its time).
func stringFieldsSize(e *ledger.Event) int {
	return len(e.ID) + len(e.Timestamp) + len(e.Version) +
		len(e.Actor.ID) + len(e.Actor.Type) + len(e.Actor.IP) + len(e.Actor.Session) + len(e.Actor.UserAgent) +
		len(e.Action.Type) + len(e.Action.Resource) + len(e.Action.ResourceID) + len(e.Action.Result) +
		len(e.Context.RequestID) + len(e.Context.Environment) + len(e.Context.Application) + len(e.Context.Version)
}

// maxMetaClasses bounds the cache of metadata keys' classes (clients
// choose metadata keys; past this many, keys are classified each time).
const maxMetaClasses = 256

// metaClass is classOf(k, true), cached: matching a metadata key lower-
// cases it and looks it up in two selectors, for every value of every
// event.
func (c *Crypter) metaClass(k string) (class string, ok bool) {
	old := c.metaClasses.Load()
	if old != nil {
		if class, hit := (*old)[k]; hit {
			return class, class != ""
		}
	}
	class, ok = c.classOf(k, true)
	if old == nil || len(*old) < maxMetaClasses {
		m := make(map[string]string, 1+len(mapOrNil(old)))
		maps.Copy(m, mapOrNil(old))
		m[k] = class
		c.metaClasses.CompareAndSwap(old, &m) // a lost race only loses this entry
	}
	return class, ok
}

func mapOrNil(p *map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	return *p
}

// Reveal decrypts, in place, the encrypted fields of an event read from
// the ledger: sensitive ones only when sensitive is true (else they read
// Encrypted), personal ones always, unless their subject was erased
// (Erased). Values no key opens read Undecryptable.
func (c *Crypter) Reveal(e *ledger.Event, sensitive bool) {
	if err := c.refresh(); err != nil {
		c.log.Error("fieldcrypt: reveal", "err", err)
	}
	anchor := eventDataKey(e)
	for _, f := range allStringFields {
		if p := f.get(e); IsSealed(*p) {
			*p = c.open(f.name, *p, sensitive, anchor)
		}
	}
	var m map[string]string
	for k, v := range e.Action.Metadata {
		if IsSealed(v) {
			if m == nil {
				m = maps.Clone(e.Action.Metadata)
			}
			m[k] = c.open("metadata."+k, v, sensitive, anchor)
		}
	}
	if m != nil {
		e.Action.Metadata = m
	}
}

// eventDataKey is the data key id named by the first v2 value of e's
// encryptable fields: the key of its keyless v2 values ("" if none).
func eventDataKey(e *ledger.Event) string {
	for _, f := range encryptable {
		if v := *f.get(e); len(v) > 8 && v[:8] == "pii:v2:d" || len(v) > 0 && v[0] == sealed.Keyed {
			if s, err := ParseSealed(v); err == nil {
				return s.KeyID
			}
		}
	}
	return ""
}

// open decrypts one stored value of field; anchor is the data key of
// the event's keyless v2 values.
func (c *Crypter) open(field, stored string, sensitive bool, anchor string) string {
	v, err := ParseSealed(stored)
	if err != nil {
		return stored // a client's value that merely looks encrypted
	}
	if v.Class == ClassSensitive && !sensitive {
		return Encrypted
	}
	if v.Version == formatV2 {
		id := v.KeyID
		if id == "" {
			id = anchor
		}
		if id == "" {
			return Undecryptable
		}
		dk, state := c.dataKey(id)
		if dk == nil {
			return state
		}
		pt, ok := dk.openV2(aad(v.Class, field), v.Payload)
		if !ok {
			return Undecryptable
		}
		return string(pt)
	}
	var a cipher.AEAD
	if v.KeyID[0] == 'f' {
		c.mu.RLock()
		if k := c.fieldKeyLocked(v.KeyID); k != nil {
			a = k.aead
		}
		c.mu.RUnlock()
	} else {
		dk, state := c.dataKey(v.KeyID)
		if dk == nil {
			return state
		}
		a = dk.aead()
	}
	if a == nil {
		return Undecryptable
	}
	pt, err := a.Open(nil, v.Payload[:nonceSize], v.Payload[nonceSize:], aad(v.Class, field))
	if err != nil {
		return Undecryptable
	}
	return string(pt)
}

// dataKey returns a data key for decryption, or nil and the placeholder
// to show.
func (c *Crypter) dataKey(id string) (*dataKey, string) {
	c.mu.RLock()
	dk, erased, gen := c.byID[id], c.erased[id], c.gen
	c.mu.RUnlock()
	if dk != nil {
		return dk, ""
	}
	if erased {
		return nil, Erased
	}
	dk, err := c.loadDataKey(id)
	if err != nil {
		c.log.Warn("fieldcrypt: cannot open a data key", "key", id, "err", err)
		return nil, Undecryptable
	}
	if dk != nil {
		c.cacheDataKey(gen, "", dk)
		return dk, ""
	}
	if _, err := c.kv.Get(slot(prefixErased, id)); err == nil {
		c.mu.Lock()
		if len(c.erased) >= maxCached {
			c.erased = make(map[string]bool)
		}
		c.erased[id] = true // erasure is final: no generation check needed
		c.mu.Unlock()
		return nil, Erased
	}
	return nil, Undecryptable
}

// StoredForms returns the strings a searchable personal field holding
// value is stored as in events of subject (per live data key of the
// subject: the v1 form, and the v2 forms with and without the key id):
// the query layer matches them instead of the plaintext. It
// returns nil for a field that is not searchable or a subject without
// keys.
func (c *Crypter) StoredForms(subject, field, value string) ([]string, error) {
	if c.cfg.subject == nil || !c.cfg.searchable.hasField(field) || !c.cfg.personal.hasField(field) || c.cfg.sensitive.hasField(field) {
		return nil, nil
	}
	ids, err := c.subjectDataKeys(subject)
	if err != nil {
		return nil, err
	}
	var out []string
	var nbuf [nonceSize]byte
	for _, id := range ids {
		dk, _ := c.dataKey(id.id)
		if dk == nil {
			continue
		}
		out = append(out, sealWith(dk.aead(), ClassPersonal, dk.id, field, value, dk.detNonce(nbuf[:0], field, value)))
		var sl sealer
		ad := aad(ClassPersonal, field)
		for _, keyless := range []bool{false, true} {
			text, _ := sealed.Text(sl.sealV2(dk, ad, value, keyless))
			out = append(out, text)
		}
	}
	return out, nil
}

type subjectKeyRef struct {
	id    string
	index []byte // the s/k/ key
}

// subjectDataKeys lists the data keys of subject under every field key.
func (c *Crypter) subjectDataKeys(subject string) ([]subjectKeyRef, error) {
	if err := c.refresh(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	var unusable []string
	var fks []*fieldKey
	for id, fk := range c.fields {
		if fk.lookup == nil {
			unusable = append(unusable, id)
		} else {
			fks = append(fks, fk)
		}
	}
	c.mu.RUnlock()
	if len(unusable) > 0 {
		slices.Sort(unusable)
		return nil, fmt.Errorf("%w: field keys %v (a subject's data keys under them cannot be found)", ErrWrongKey, unusable)
	}
	var out []subjectKeyRef
	for _, fk := range fks {
		p := subjectPrefix(fk.subjectLookup(subject))
		if err := c.kv.ScanKV(p, func(k, _ []byte) error {
			out = append(out, subjectKeyRef{id: string(k[len(p):]), index: bytes.Clone(k)})
			return nil
		}); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b subjectKeyRef) int { return bytes.Compare(a.index, b.index) })
	return out, nil
}

// ErasureRecord is stored for each destroyed data key.
type ErasureRecord struct {
	ErasedAt time.Time `json:"erasedAt"`
	EventID  string    `json:"eventId"` // the erasure event in the ledger
}

// Erase destroys every data key of subject on every node (one
// replicated write: the wrapped keys and their index entries are
// deleted, an erasure record is left per key, and every node's caches
// are flushed). Afterwards the subject's encrypted fields read Erased;
// leaves, proofs and checkpoints are untouched. eventID names the
// erasure event the caller appends next. It returns the destroyed data
// key ids (none when the subject has no keys, e.g. a second erasure).
//
// Events of the subject appended concurrently with the erasure may get
// a fresh data key and stay readable: they count as after the erasure.
func (c *Crypter) Erase(ctx context.Context, subject, eventID string) ([]string, error) {
	if c.cfg.subject == nil {
		return nil, fmt.Errorf("%w: per-subject keys are off (subjectField is none)", ledger.ErrInvalid)
	}
	if subject == "" {
		return nil, &ledger.FieldError{Field: "subject", Reason: "required"}
	}
	c.createMu.Lock() // no data key of this node is being created meanwhile
	defer c.createMu.Unlock()
	if a, ok := c.commit.(aheadCommitter); ok { // keys queued for the next batch, too
		if err := a.FlushKVAhead(ctx); err != nil {
			return nil, fmt.Errorf("fieldcrypt: erase: %w", err)
		}
	}
	refs, err := c.subjectDataKeys(subject)
	if err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(ErasureRecord{ErasedAt: c.now().UTC(), EventID: eventID})
	ops := make([]ledger.KV, 0, 3*len(refs)+1)
	ids := make([]string, 0, len(refs))
	for _, r := range refs {
		ids = append(ids, r.id)
		ops = append(ops,
			ledger.KV{Key: slot(prefixDataKey, r.id), Delete: true},
			ledger.KV{Key: r.index, Delete: true},
			ledger.KV{Key: slot(prefixErased, r.id), Value: rec})
	}
	ops = append(ops, ledger.KV{Key: keyGeneration, Value: newGeneration()})
	if err := c.commit.CommitKV(ctx, ops); err != nil {
		return nil, fmt.Errorf("fieldcrypt: erase: %w", err)
	}
	// On a follower the write is committed but maybe not applied here
	// yet: wait, so that no read on this node decrypts after Erase.
	if len(ids) > 0 {
		if err := c.awaitLocal(ctx, slot(prefixErased, ids[0])); err != nil {
			return ids, err
		}
	}
	if err := c.refresh(); err != nil {
		return ids, err
	}
	return ids, nil
}
