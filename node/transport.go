package node

import "google.golang.org/grpc"

// Flow-control windows of the gRPC server, static. With gRPC's default
// dynamic windows the server runs a bandwidth-delay estimator that sends
// a PING (with a window update) after the first DATA frame following
// each PING ack; a client that waits for each call before the next never
// fills a sample, so the estimator never reaches its limit and keeps
// pinging once per call: an extra frame each way, a write, a read and
// goroutine wake-ups on both ends of every call. The sizes are what the
// estimator would grow the windows to at most (its limit is 16 MiB).
// Clients run their own estimator: static windows on the client turn
// its PINGs off too (bench does).
const (
	grpcStreamWindow = 8 << 20
	grpcConnWindow   = 16 << 20
)

// transportServerOptions are the gRPC server's transport settings.
func transportServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.StaticStreamWindowSize(grpcStreamWindow),
		grpc.StaticConnWindowSize(grpcConnWindow),
	}
}
