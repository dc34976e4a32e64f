# ledgerd: a verifiable audit ledger. `make run` starts one node on its
# embedded defaults; `make test` runs every test the way CI does.
GO        ?= go
export GOTOOLCHAIN ?= local
DATA_DIR  ?= $(CURDIR)/.data/dev
BIN       := $(CURDIR)/bin
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# The version gRPC itself requires (go.mod): generator and runtime match.
PROTOC_GEN_VTPROTO := github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10
STATICCHECK        := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test test-short bench bench-micro lint lint-fast proto cluster clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/ledgerd --data-dir $(DATA_DIR)

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short -count=1 ./...

# The standard suite through `ledgerctl bench` (3 runs each; results and a
# markdown summary in bench/results/). LONG=1 runs the long suite, RUNS=n
# changes the runs, BENCH_ARGS adds ledgerctl bench flags to every run.
RUNS ?= 3
bench: build
	$(GO) run ./bench/cmd/benchsuite --ledgerctl $(BIN)/ledgerctl --out bench/results --runs $(RUNS) $(if $(LONG),--long) $(if $(BENCH_ARGS),--args "$(BENCH_ARGS)")

# Go micro-benchmarks of the Merkle tree and the ledger.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./merkle/ ./ledger/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# lint-fast is what CI runs before the tests: formatting and vet only.
lint-fast:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); exit 1)

proto:
	$(GO) install $(PROTOC_GEN_GO)
	$(GO) install $(PROTOC_GEN_GO_GRPC)
	$(GO) install $(PROTOC_GEN_VTPROTO)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc -I api/proto \
	  --go_out=. --go_opt=module=github.com/auditledger/ledgerd \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/auditledger/ledgerd \
	  --go-vtproto_out=. --go-vtproto_opt=module=github.com/auditledger/ledgerd,features=marshal+unmarshal+size \
	  api/proto/ledger/v1/*.proto

# Three nodes on loopback in the foreground; Ctrl-C stops them.
cluster: build
	scripts/cluster.sh $(BIN)

clean:
	rm -rf $(BIN) .data
