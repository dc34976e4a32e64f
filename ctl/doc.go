// Package ctl is ledgerctl, the command-line client of ledgerd that
// operators script and auditors verify with. cmd/ledgerctl only calls Main.
//
// # Output contract
//
// Auditors script these shapes; keep them. Hashes, leaves and signatures
// in JSON are standard base64 (with padding). Extra fields may be added
// after the listed ones, never renamed or removed.
//
//	append [--wait]              one line per event, in input order:
//	                             {"index":N,"id":"…","leafHash":"…","signature":"…"}
//	                             (+ "duplicate":true when the id existed already;
//	                             with --wait + "inclusion":{prove-inclusion shape}
//	                             and "checkpoint":"<signed note>", a self-contained
//	                             receipt that verify inclusion accepts as is)
//	get --index N | --id ID      {"index":N,"leaf":"…","event":{protojson},
//	                             "leafHash":"…","receivedAt":"…","keyId":"…","signature":"…"}
//	checkpoint                   the signed note, byte for byte as served
//	pubkey                       the note verifier key, name+hash+base64key
//	prove inclusion              {"index":N,"treeSize":S,"leafHash":"…","hashes":["…"]}
//	prove consistency            {"fromSize":M,"toSize":N,"hashes":["…"]}
//	verify inclusion|consistency one "verified: …" line; the exit status is the answer
//	verify-log                   {"ok":true|false,…} (see verifylog.go)
//
// # Exit status
//
//	0  success; for the verify commands: the thing checked is valid
//	1  verification failed: a proof, checkpoint or log does not verify
//	2  anything else: bad flags or input, gRPC errors, I/O errors
//
// Every error is one line on stderr, "ledgerctl: <error>"; gRPC errors
// read "ledgerctl: <code>: <message>" (e.g. "ledgerctl: NotFound: …").
//
// # Adding a command
//
// Write newXxxCmd(g *globals) *cobra.Command in its own file and add one
// line to newRootCmd in root.go. Use g.client(ctx) for the ledger client
// or g.conn() for another service on the same connection; print with
// g.printJSON; return errors (wrap verification failures with
// errVerify so they exit 1). Global flags (--addr, --token, --timeout,
// and later TLS) live in globals.go.
package ctl
