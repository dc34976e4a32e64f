// Package fieldcrypt encrypts the sensitive and personal fields of audit
// events before their leaves are built, decrypts them for the callers
// allowed to see them, rotates keys, and erases data subjects by
// destroying their keys (crypto-shredding). Leaves only ever hold
// ciphertext, so proofs and checkpoints verify without any key, and an
// erasure changes no leaf: every inclusion and consistency proof, and
// verify-log, still pass afterwards.
//
// # Keys
//
//	master key (AUDIT_ENCRYPTION_KEY or a key file; old ones in oldKeyFiles)
//	  └─ wraps field keys            s/f/<id>, rotatable, newest is current
//	       ├─ encrypt fields of events without a data subject
//	       └─ wrap per-subject data keys   s/d/<id>, found via s/k/<lookup>/<id>
//	            └─ encrypt every encrypted field of the subject's events
//
// Field keys and data keys live in the ledger's reserved table s/ and are
// written through the ledger's Committer (CommitKV), so in a cluster they
// go through Raft and every node holds the same ones; keys.go documents
// the layout. A node holds the master key only; without it, nothing in
// the table decrypts.
//
// The stored form of an encrypted value ("enc:v1:<keyId>:<base64url>",
// "pii:v1:…", and for searchable fields the shorter "pii:v2:…", where
// only an event's first v2 value names its data key) is documented in
// format.go; Transform hands v2 values to the ledger in the binary its
// leaves hold (internal/sealed), and reads give back the text. Finding and creating subjects' data keys without a store
// scan per new subject, and in shared writes, is in subjects.go.
//
// # Fields
//
// Config.SensitiveFields (default password, token, ssn, creditCard,
// matched against metadata keys case-insensitively) are class "enc":
// decrypted only for callers allowed to read sensitive data, shown as
// "[encrypted]" to the others. Config.PersonalFields (default actor.id,
// actor.ip, actor.session, actor.userAgent) are class "pii": decrypted
// for every caller allowed to read events. The data subject of an event
// is Config.SubjectField (default actor.id). Searchable fields (default
// actor.id) are encrypted deterministically per data key, so the query
// layer can look a subject up by its stored form (StoredForms).
//
// # Rotation and erasure
//
// Rotate makes a new field key current: new events, and new data keys,
// use it; old keys keep decrypting. It also re-wraps every field key with
// the current master key, which is how a master key is retired. Erase
// deletes all of a subject's data keys in one replicated write, leaves an
// erasure record per key, and flushes every node's key caches: from then
// on the subject's fields read "[erased]". Nothing in a leaf names the
// subject: data key ids are random and the subject index is keyed by an
// HMAC only the master key can recompute, and is deleted by the erasure.
//
// # Use
//
//  1. m, _, err := LoadMasterKeys(keyFile, defaultFile, oldFiles, generate)
//  2. c, err := New(Options{Config: cfg, Master: m, Store: store, Commit: committer})
//  3. ledger.Config{Transform: c.Transform, ...}: encrypt on append.
//  4. c.Reveal(&event, principal may read sensitive data) on every read.
//  5. c.Rotate(ctx), c.Erase(ctx, subject, eventID) from the admin API.
//
// A Crypter is safe for concurrent use and starts no goroutines.
package fieldcrypt
