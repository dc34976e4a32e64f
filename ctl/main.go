package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/status"
)

// Exit statuses of Main.
const (
	ExitOK     = 0 // success; for verify commands: valid
	ExitFailed = 1 // verification failed
	ExitError  = 2 // bad flags or input, RPC or I/O error
)

// errVerify marks a verification failure (exit status 1). Wrap it:
// fmt.Errorf("%w: entry %d: …", errVerify, i).
var errVerify = errors.New("verification failed")

// Main runs ledgerctl with args (without the program name) and returns
// the exit status. The environment supplies defaults for global flags
// (LEDGER_ADDR, LEDGER_TOKEN).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, os.Getenv, stdin, stdout, stderr)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := newGlobals(getenv, stdin, stdout, stderr)
	defer g.close()
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "ledgerctl: "+errorLine(err))
	if errors.Is(err, errVerify) {
		return ExitFailed
	}
	return ExitError
}

// errorLine renders err on one line. A gRPC status reads "<code>:
// <message>" so scripts can match the code.
func errorLine(err error) string {
	msg := err.Error()
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		s := se.GRPCStatus()
		msg = s.Code().String() + ": " + s.Message()
	}
	return strings.Join(strings.Fields(msg), " ")
}
