# job-service. `make run` and `make test` work on a fresh machine: both bring the local stack
# up first (deploy/local/stack.sh installs what is missing and caches downloads in
# ~/.cache/job-service).
SHELL := /bin/bash
GO    ?= go
STACK := deploy/local/stack.sh
# Components the tests and the demo need.
COMPONENTS ?= postgres redis rocketmq s3 neo4j elasticsearch
ENV   := source deploy/local/env.sh &&

.PHONY: chromium all build run test test-unit test-integration stack-up stack-down stack-status stack-reset bench lint fuzz fmt vet clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

stack-up:
	$(STACK) up $(COMPONENTS)

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status $(COMPONENTS)

stack-reset:
	$(STACK) reset

## run: the service on the local stack with demo data; Ctrl-C stops it (the stack keeps running).
run: build stack-up
	$(ENV) psql "$$JOBSVC_PG_DSN" -q -v ON_ERROR_STOP=1 -f deploy/local/chat_schema.sql
	@echo "job-service starting; in another shell try: bin/jobctl run pg_partition --wait"
	@echo "console: http://$$(sed -n 's/^ *listen: *\([^ #]*\).*/\1/p' configs/local.yaml | head -n1)/ (admin token: admin.token in configs/local.yaml)"
	$(ENV) exec bin/job-service --config configs/local.yaml

## test: unit + integration tests against the real local stack, plus a short fuzz run.
test: stack-up vet chromium
	$(ENV) $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=10s ./job/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=10s ./config/

## chromium: headless Chromium for the console's browser test (installed when missing).
chromium:
	@deploy/local/chromium.sh >/dev/null

## test-unit: unit tests only, no servers needed.
test-unit:
	$(GO) test -short -count=1 ./...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=2m ./job/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=2m ./config/

bench: stack-up
	$(ENV) $(GO) test -run='^$$' -bench=. -benchtime=1x -timeout 30m ./...

vet:
	$(GO) vet ./...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
