# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
DATA    ?= data
ADDR    ?= :8080

export PATH := $(PATH):/usr/local/go/bin

.PHONY: run test bench lint fuzz build clean

## run: start the server on the embedded store with demo customers
run:
	$(GO) run ./cmd/kyc serve --addr $(ADDR) --data $(DATA) --demo

## test: every test, with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: the throughput and latency benchmarks (figures go in the README).
## BenchmarkReadModels generates KYC_BENCH_CUSTOMERS customers (default
## 1000000, about ten events each) and keeps them in KYC_BENCH_DATA if set;
## at full size it runs for a long while, hence the timeout. The read-model
## benchmarks hold their writers as kyc serve does by default (--max-read-lag
## 50ms); KYC_BENCH_MAX_READ_LAG=20ms tries another setting.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 180m ./adapters/bench/

## lint: formatting and static checks
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-clean:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@dead=$$($(GO) tool deadcode -test ./...); \
	if [ -n "$$dead" ]; then echo "functions nothing calls, tests included:"; echo "$$dead"; exit 1; fi

## fuzz: run each fuzz test for a while (FUZZTIME=30s by default)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./adapters/httpapi -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/httpapi -run '^$$' -fuzz '^FuzzHeaders$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/httpapi -run '^$$' -fuzz '^FuzzCommandBodies$$' -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz '^FuzzParseDefinition$$' -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/httpapi -run '^$$' -fuzz '^FuzzKeysFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/delivery/cloudevent -run '^$$' -fuzz '^FuzzFromMessage$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/httpapi -run '^$$' -fuzz '^FuzzListQuery$$' -fuzztime $(FUZZTIME)
	$(GO) test ./projections -run '^$$' -fuzz '^FuzzSearchWords$$' -fuzztime $(FUZZTIME)

## build: the static kyc binary
build:
	CGO_ENABLED=0 $(GO) build -o bin/kyc ./cmd/kyc

clean:
	rm -rf bin
