# Gatehouse. The README's two commands are the contract:
#   make run    build and start the gateway on its embedded default
#   make test   install missing test dependencies (as root), vet, race-test
GO      ?= go
BIN     := bin/gatehouse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/gatehouse-dev/gatehouse/internal/cli.Version=$(VERSION)

# cgo stays on: the race detector needs it, and so will the PostgreSQL parser.
export CGO_ENABLED := 1

.PHONY: build run test deps vet fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gatehouse

run: build
	./$(BIN) server $(ARGS)

test: deps vet
	$(GO) test -race -timeout 20m ./...

deps:
	@scripts/install-deps

vet:
	$(GO) vet ./...

# Short fuzzing pass over every parser (FUZZTIME per target).
FUZZTIME ?= 30s
FUZZFLAGS = -run=^$$ -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzDecode ./internal/resource
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzParseToken ./internal/identity
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzExchangeInput ./internal/identity
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzReadStartup ./internal/proto/postgres/pgwire
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzChunker ./internal/proto/postgres/pgwire
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzFields ./internal/proto/postgres/pgwire
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzClassify ./internal/sqlparse
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzStatements ./internal/recording
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzDecode ./internal/compress
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzFind ./internal/mask
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzMaskRow ./internal/proto/postgres
	$(GO) test $(FUZZFLAGS) -fuzz=FuzzDescribeParams ./internal/proto/postgres

clean:
	rm -rf bin
