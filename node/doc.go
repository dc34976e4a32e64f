// Package node wires one ledgerd process: configuration (file, then
// flags), keys, the Pebble store, the ledger's write path and the API
// listeners.
//
// To run a node:
//
//  1. Build a Config: Defaults(), or LoadConfig(file), then set what the
//     flags say; Validate checks it.
//  2. Start(ctx, cfg, logger) opens DATA_DIR, loads or generates keys
//     (environment, then key files, then DATA_DIR, mode 0600), opens the
//     store and starts serving.
//  3. Close(ctx) on shutdown: listeners stop accepting, in-flight
//     requests and queued appends finish, then the store closes. Whoever
//     called Start calls Close.
//
// A Node is safe for concurrent use.
package node
