package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/api/wire"
)

// DefaultAddr is the ledgerd gRPC address used when neither --addr nor
// LEDGER_ADDR is set.
const DefaultAddr = "127.0.0.1:7070"

// maxRecvMessage admits the largest response ledgerd sends (24 MiB).
const maxRecvMessage = 32 << 20

// globals are the options every command shares, the process's streams and
// the lazily dialled connection. Commands of other packages' features add
// their global flags here (TLS: a field, a flag in bindFlags, a dial
// option in dialOptions).
type globals struct {
	addr    string
	token   string
	timeout time.Duration
	tls     tlsFlags // tls.go

	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	cc *grpc.ClientConn // dialled by conn, closed by close
}

func newGlobals(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *globals {
	return &globals{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
}

// bindFlags adds the global flags to the root command.
func (g *globals) bindFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.addr, "addr", envOr(g.getenv, "LEDGER_ADDR", DefaultAddr), "ledgerd gRPC address (env LEDGER_ADDR)")
	// The token's environment default is read at dial time, so that
	// --help never prints it.
	f.StringVar(&g.token, "token", "", "bearer token sent as \"authorization: Bearer <token>\" (env LEDGER_TOKEN)")
	f.DurationVar(&g.timeout, "timeout", 30*time.Second, "deadline of each RPC")
	f.BoolVar(&g.tls.enabled, "tls", false, "connect with TLS, verifying the server with the system's roots (or --ca)")
	f.StringVar(&g.tls.ca, "ca", envOr(g.getenv, "LEDGER_CA", ""), "CA certificate (PEM) of the server; turns on TLS (env LEDGER_CA)")
	f.StringVar(&g.tls.cert, "cert", envOr(g.getenv, "LEDGER_CERT", ""), "client certificate (PEM) for mutual TLS (env LEDGER_CERT)")
	f.StringVar(&g.tls.key, "key-file", envOr(g.getenv, "LEDGER_KEY", ""), "private key (PEM) of --cert (env LEDGER_KEY)")
	f.StringVar(&g.tls.serverName, "server-name", "", "name to verify the server's certificate against (default: the --addr host)")
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// dialOptions are the options of the connection to --addr.
func (g *globals) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMessage), grpc.ForceCodecV2(wire.Client())),
		grpc.WithChainUnaryInterceptor(g.unaryInterceptor),
		grpc.WithChainStreamInterceptor(g.streamInterceptor),
	}
}

// conn returns the connection to --addr, dialling it on first use.
func (g *globals) conn() (*grpc.ClientConn, error) {
	if g.cc != nil {
		return g.cc, nil
	}
	if g.token == "" {
		g.token = g.getenv("LEDGER_TOKEN")
	}
	creds, err := g.tls.transportCredentials()
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(g.addr, append(g.dialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", g.addr, err)
	}
	g.cc = cc
	return cc, nil
}

// client returns the ledger.v1 client on the shared connection.
func (g *globals) client() (pb.LedgerClient, error) {
	cc, err := g.conn()
	if err != nil {
		return nil, err
	}
	return pb.NewLedgerClient(cc), nil
}

func (g *globals) close() {
	if g.cc != nil {
		g.cc.Close()
		g.cc = nil
	}
}

// outgoing adds the bearer token to ctx.
func (g *globals) outgoing(ctx context.Context) context.Context {
	if g.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.token)
	}
	return ctx
}

func (g *globals) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = g.outgoing(ctx)
	if _, ok := ctx.Deadline(); !ok && g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// streamInterceptor adds the token; streams have no per-call deadline
// since they may legitimately run for a long time.
func (g *globals) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(g.outgoing(ctx), desc, cc, method, opts...)
}

// printJSON writes v as one compact JSON line on stdout.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// isTerminal reports whether stream (stdin, stdout or stderr) is a
// character device (a terminal).
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
