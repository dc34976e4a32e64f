#!/usr/bin/env bash
# Start a three-node ledgerd cluster on loopback, in the foreground.
#
#   scripts/cluster.sh [BIN_DIR]        (make cluster builds and runs it)
#
# Data lives under CLUSTER_DIR (default: a new temp dir, kept on exit so
# it can be inspected). Ports: gRPC 7171-7173, Raft 7271-7273, HTTP
# 8181-8183 (set BASE_GRPC, BASE_RAFT, BASE_HTTP to move them).
# n1 bootstraps the cluster; n2 and n3 join it through n1's gRPC address
# and receive the cluster's keys with the join (a shared cluster token,
# generated here, authenticates the nodes to each other).
# Ctrl-C (or SIGTERM) stops all three.
set -euo pipefail

BIN=${1:-bin}
DIR=${CLUSTER_DIR:-$(mktemp -d -t ledgerd-cluster.XXXXXX)}
BASE_GRPC=${BASE_GRPC:-7171}
BASE_RAFT=${BASE_RAFT:-7271}
BASE_HTTP=${BASE_HTTP:-8181}
mkdir -p "$DIR"

token_file="$DIR/cluster.token"
[ -s "$token_file" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	echo "cluster stopped; data kept in $DIR"
}
trap stop INT TERM EXIT

start() { # start <n> <extra flags...>
	local n=$1
	shift
	local d="$DIR/n$n"
	mkdir -p "$d"
	"$BIN/ledgerd" --node-id "n$n" \
		--data-dir "$d" \
		--grpc-addr "127.0.0.1:$((BASE_GRPC + n - 1))" \
		--http-addr "127.0.0.1:$((BASE_HTTP + n - 1))" \
		--raft-addr "127.0.0.1:$((BASE_RAFT + n - 1))" \
		--cluster-token-file "$token_file" \
		"$@" >>"$d/ledgerd.log" 2>&1 &
	pids+=($!)
}

# wait_ready <n>: the node answers gRPC (any reply, even "unauthenticated").
wait_ready() {
	local addr="127.0.0.1:$((BASE_GRPC + $1 - 1))"
	for _ in $(seq 1 300); do
		if ! kill -0 "${pids[$(($1 - 1))]}" 2>/dev/null; then
			echo "n$1 exited; its log:" >&2
			cat "$DIR/n$1/ledgerd.log" >&2
			exit 1
		fi
		if out=$("$BIN/ledgerctl" --addr "$addr" --timeout 1s checkpoint 2>&1) || [[ $out == *nauthenticated* || $out == *ermission* ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "n$1 did not come up; see $DIR/n$1/ledgerd.log" >&2
	exit 1
}

start 1 --bootstrap
wait_ready 1
start 2 --join "127.0.0.1:$BASE_GRPC"
start 3 --join "127.0.0.1:$BASE_GRPC"
wait_ready 2
wait_ready 3

tok="$DIR/n1/admin.token"
cat <<EOF

Three ledgerd nodes are running on loopback (data and logs in $DIR):
  n1  gRPC 127.0.0.1:$BASE_GRPC       Raft 127.0.0.1:$BASE_RAFT
  n2  gRPC 127.0.0.1:$((BASE_GRPC + 1))       Raft 127.0.0.1:$((BASE_RAFT + 1))
  n3  gRPC 127.0.0.1:$((BASE_GRPC + 2))       Raft 127.0.0.1:$((BASE_RAFT + 2))

Talk to any of them (writes on a follower go to the leader):
  export LEDGER_TOKEN="\$(cat $tok)"
  $BIN/ledgerctl --addr 127.0.0.1:$((BASE_GRPC + 1)) append --event '{"actor":{"id":"alice"},"action":{"type":"login","resource":"app","result":"success"}}'
  $BIN/ledgerctl --addr 127.0.0.1:$((BASE_GRPC + 2)) cluster status
  $BIN/ledgerctl --addr 127.0.0.1:$BASE_GRPC checkpoint

Ctrl-C stops all three.
EOF
wait
