// Command ledgerctl is the command-line client of ledgerd: append events,
// read entries, fetch checkpoints and proofs, verify them offline and
// verify a whole log. The commands live in package ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditledger/ledgerd/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
