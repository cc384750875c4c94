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
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./internal/resource
	$(GO) test -run=^$$ -fuzz=FuzzParseToken -fuzztime=$(FUZZTIME) ./internal/identity

clean:
	rm -rf bin
