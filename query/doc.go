// Package query keeps the ledger's secondary indexes and answers
// searches over them: by actor (id, type, IP), action type, resource
// (and id), result, application, environment, request id, server receive
// time and the events' own timestamps, combined with AND, in index order
// either way, a page at a time with signed cursors, or streamed.
//
// The indexes are written by the Store's apply hooks, in the same Pebble
// batch as the entries they index (see Index): on every node, after any
// crash or Raft snapshot, they hold exactly the committed entries, and a
// query never sees an entry it cannot read. What that costs the write
// path, and the key layout that keeps the cost down (one key per value
// per batch, hashed buckets for the two nearly unique fields, a zone map
// for client timestamps), is in keys.go and bench_test.go.
//
// To use it:
//
//  1. idx := NewIndex(); idx.Install(&storeOptions) before
//     ledger.OpenStore.
//  2. idx.Attach(ctx, store) right after opening, before anything
//     applies (in a cluster: before Raft starts). It builds the indexes
//     of a store written without them.
//  3. NewEngine(EngineOptions{Store, CursorKey, Registerer}) — the cursor
//     key material must be the same on every node (the cluster's HMAC
//     key), so that any node continues any node's cursor.
//  4. Engine.Query for a page, Engine.Stream for everything; both stop
//     when their context ends.
//
// How the engine runs a query: each field filter is a source of indices
// (a posting list, or a union of them when encrypted values have several
// stored forms); a receive-time range is an index range (marks.go); an
// event-time range is a zone-map source. A leapfrog join seeks every
// source to the largest candidate any has reached until they agree, so
// an intersection of a rare and a common filter reads about as many
// rows as the rare one has. Only matching entries are read, and only
// the fields a check needs are decoded. Totals are exact up to 10,000
// candidates and extrapolated (and flagged) beyond.
//
// An Engine and an Index are safe for concurrent use; neither starts a
// goroutine.
package query
