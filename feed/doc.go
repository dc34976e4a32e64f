// Package feed is the ledger's change feed and the runner of its SIEM
// sinks.
//
// The change feed delivers committed entries in index order, each with
// its leaf hash and, on request, an inclusion proof against a signed
// checkpoint, so a consumer can verify what it receives:
//
//  1. s := feed.Subscribe(store, from, feed.Options{Follow: true}) —
//     store is the *ledger.Store; add Proofs: theLedger for proofs.
//  2. Call s.Next(ctx) or s.NextBatch(ctx, max, linger) in a loop. The
//     subscription reads ahead at most Options.Buffer entries and only
//     when asked, so a slow consumer gets back-pressure, never unbounded
//     memory, and appends never wait for it. It starts no goroutine and
//     needs no Close; drop it when done.
//
// Sinks (Kafka, Elasticsearch/OpenSearch, Splunk HEC, webhooks; each in
// its own sub-package, built from configuration by feed/sinks) implement
// Sink. A Manager runs them:
//
//  1. m, err := feed.NewManager(feed.ManagerConfig{Store: store,
//     Committer: theLedger.Committer(), Sinks: specs, IsLeader: ...,
//     Registerer: reg}) — it starts a supervisor goroutine.
//  2. While IsLeader holds, one runner per sink reads the feed from the
//     sink's replicated cursor (CursorKey), delivers batches, retries
//     with exponential backoff and jitter, raises an alert after
//     AlertAfter of failure (error log, ledger_sink_alerting, Healthy()
//     false), optionally moves rejected entries to a dead-letter file,
//     and commits the cursor through CommitKV after every delivered
//     batch. Delivery is at-least-once; receivers deduplicate by the
//     ledger index. A sink that is a Pipeliner (Kafka) may have up to
//     Delivery.InFlight batches sent and unacknowledged (default 1);
//     the cursor still moves only past acknowledged batches.
//  3. m.Healthy() feeds the append response's "streamed" field and
//     m.Status() the status RPC and health endpoint.
//  4. m.Close(ctx) stops the runners and closes the sinks; call it
//     before closing the ledger and store.
//
// Subscriptions are not safe for concurrent use; Manager methods are.
package feed
