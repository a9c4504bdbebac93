# entitylock — run `make help` for the targets.

GO          ?= go
SQLC        := bin/sqlc
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME   ?= 1s
FUZZTIME    ?= 30s
SOAKTIME    ?= 10m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

# sqlc is built from the version pinned in go.mod (see tools.go); the first
# build compiles its cgo PostgreSQL parser and takes a few minutes.
$(SQLC): go.mod go.sum
	$(GO) build -o $@ github.com/sqlc-dev/sqlc/cmd/sqlc

.PHONY: generate
generate: $(SQLC) ## Regenerate db/ from queries/ and schema/ with sqlc.
	$(SQLC) generate

.PHONY: check-generated
check-generated: $(SQLC) ## Fail if db/ is stale or go.mod/go.sum are untidy.
	$(SQLC) diff
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff

.PHONY: test
test: ## Run every test under the race detector, then the soak for 60s without it (PostgreSQL too when ENTITYLOCK_POSTGRES_DSN is set).
	@[ -n "$$ENTITYLOCK_POSTGRES_DSN" ] || echo "note: the PostgreSQL tests skip: set ENTITYLOCK_POSTGRES_DSN to run them, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	$(GO) test -race -shuffle=on -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./internal/...
	ENTITYLOCK_SOAK=60s $(GO) test -count=1 -run '^TestSoak$$' ./soak/

.PHONY: soak
soak: ## The soak test for SOAKTIME (default 10m): 3 processes on SQLite, and on PostgreSQL when ENTITYLOCK_POSTGRES_DSN is set.
	ENTITYLOCK_SOAK=$(SOAKTIME) $(GO) test -count=1 -timeout 3h -v -run '^TestSoak$$' ./soak/

.PHONY: bench
bench: ## Run the Go benchmarks of the lock package.
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./lock/

.PHONY: bench-compare
bench-compare: ## The comparison harness in bench/ (minutes; ARGS=--quick for a smoke run).
	cd bench && $(GO) run -ldflags="-X github.com/mattn/go-sqlite3.driverName=sqlite3-mattn" . $(ARGS)

.PHONY: lint
lint: ## go vet and staticcheck (pinned), plus a cgo-free build.
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	CGO_ENABLED=0 $(GO) build ./...
	cd bench && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

.PHONY: fuzz
fuzz: ## Run the model-based fuzzer FuzzLockOps for FUZZTIME (default 30s).
	$(GO) test -run '^$$' -fuzz FuzzLockOps -fuzztime $(FUZZTIME) ./lock/

.PHONY: torture
torture: ## The long torture runs: 6 processes × 8 goroutines for 60s, 40 kill -9s.
	ENTITYLOCK_TORTURE=long $(GO) test -race -count=1 -timeout 30m -v -run 'Torture|ConcurrentStart' ./lock/
