# Linkway. `make run` starts the hub in demo mode; `make test` is what CI runs.
GO ?= go
PROTOC_GEN_GO := $(dir $(shell $(GO) tool -n protoc-gen-go))

.PHONY: run test test-cluster test-cluster-short vet lint proto proto-check bench fuzz build

build:
	$(GO) build -o bin/linkway ./services/linkway

run:
	$(GO) run ./services/linkway hub --demo --demo-history $${LINKWAY_DEMO_HISTORY:-2000}

## proto: regenerate the Go code of proto/ with the tools pinned in go.mod.
proto:
	cd proto && PATH="$(PROTOC_GEN_GO):$$PATH" $(GO) tool buf lint
	cd proto && PATH="$(PROTOC_GEN_GO):$$PATH" $(GO) tool buf generate

## proto-check: fail when the committed generated code is stale.
proto-check:
	@tmp=$$(mktemp -d) && \
	(cd proto && PATH="$(PROTOC_GEN_GO):$$PATH" $(GO) tool buf generate -o $$tmp) && \
	stale=$$(cd $$tmp && find . -name '*.pb.go' | while read f; do cmp -s "$$f" "$(CURDIR)/proto/$$f" || echo "$$f"; done); \
	extra=$$(cd proto && find . -name '*.pb.go' | while read f; do [ -e "$$tmp/$$f" ] || echo "$$f"; done); \
	rm -rf $$tmp; \
	if [ -n "$$stale$$extra" ]; then echo "generated code in proto/ is stale ($$stale $$extra): run 'make proto'"; exit 1; fi

vet:
	$(GO) vet ./...

## lint: gofmt, go vet, staticcheck and openapi-lint (tools pinned in go.mod), run by `make test`.
lint: vet openapi-lint
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l events proto services ops); if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) tool staticcheck ./...

## openapi-lint: load and validate the API document (OpenAPI 3.1) with kin-openapi,
## examples and defaults checked against their schemas.
.PHONY: openapi-lint
openapi-lint:
	$(GO) tool validate -multi proto/openapi.yaml

# `make test` runs the cluster fault test in its short form (4 node kills).
test: proto-check lint
	$(GO) test -race -count=1 -timeout 30m ./...

## test-cluster: the long cluster fault test: 3 nats-server processes, 2 hub
## processes, at least 20 kill -9 of NATS nodes and some of hub replicas
## under load, then lost/duplicated/unexpected, views against a rebuild and
## the longest write gap. test-cluster-short: its short form (4 kills), also
## run by `make test`.
test-cluster-short:
	$(GO) test -race -count=1 -v -run TestClusterFaults -timeout 20m ./services/cluster

test-cluster:
	LINKWAY_CLUSTER=long $(GO) test -count=1 -v -run TestClusterFaults -timeout 40m ./services/cluster

## bench: every package's benchmarks, then the capacity benchmarks of
## services/bench once each (HTTP referrals vs raw publishes, `linkway
## rebuild all` vs a raw consumer over `linkway gen` histories with the
## national-year extrapolation, caseload latency at 200/s), which write
## ops/bench/README.md. LINKWAY_BENCH_JOURNEYS sets the history sizes
## (default 20000,100000).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 60m $$($(GO) list ./services/... | grep -v '/services/bench$$')
	LINKWAY_BENCH_WRITE=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m -v ./services/bench
