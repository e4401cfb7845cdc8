# Linkway. `make run` starts the hub in demo mode; `make test` is what CI runs.
GO ?= go
PROTOC_GEN_GO := $(dir $(shell $(GO) tool -n protoc-gen-go))

.PHONY: run test vet proto proto-check bench fuzz build

build:
	$(GO) build -o bin/linkway ./services/linkway

run:
	$(GO) run ./services/linkway hub --demo

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

test: proto-check vet
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 60m ./services/...
