# job-service. `make run` and `make test` work on a fresh machine: both bring the local stack
# up first (deploy/local/stack.sh installs what is missing and caches downloads in
# ~/.cache/job-service).
SHELL := /bin/bash
GO    ?= go
STACK := deploy/local/stack.sh
# Components the tests and the demo need.
COMPONENTS ?= postgres redis rocketmq s3 neo4j elasticsearch
ENV   := source deploy/local/env.sh &&

.PHONY: config-docs soak-gc chromium promtool all build run test test-unit test-integration stack-up stack-down stack-status stack-reset bench bench-archive bench-peers bench-precision bench-volume chaos lint fuzz fmt vet clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

## config-docs: docs/configuration.md (and the field comments it prints) from the config structs.
config-docs:
	cd config && $(GO) generate ./
	$(GO) run ./cmd/job-service config reference > docs/configuration.md

stack-up:
	$(STACK) up $(COMPONENTS)

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status $(COMPONENTS)

stack-reset:
	$(STACK) reset

## run: the service on the local stack with demo data; Ctrl-C stops it (the stack keeps running).
## seed-demo applies deploy/local/chat_schema.sql, then (re)fills the demo data.
run: build stack-up
	$(ENV) bin/jobctl seed-demo --config configs/local.yaml
	@echo "job-service starting; in another shell try: bin/jobctl run pg_partition --wait"
	@echo "console: http://$$(sed -n 's/^ *listen: *\([^ #]*\).*/\1/p' configs/local.yaml | head -n1)/ (admin token: admin.token in configs/local.yaml)"
	$(ENV) exec bin/job-service --config configs/local.yaml

## test: unit + integration tests against the real local stack, plus a short fuzz run. The
## chaos tests (real processes killed and restarted, private broker and Postgres) run last,
## alone, so their load does not slow the other packages' tests.
CHAOS_PKG := ./internal/chaos/...
# make test fuzzes by count, about 10 s each on this 2-core machine: a wall-clock -fuzztime
# can fail with "context deadline exceeded" and no crasher (a race in Go's fuzz coordinator
# up to Go 1.26, golang/go#75804).
FUZZ_DECODE_EXECS ?= 200000x
FUZZ_PARSE_EXECS  ?= 80000x
test: stack-up vet chromium promtool
	$(ENV) $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /internal/chaos)
	$(ENV) $(GO) test -count=1 -timeout 25m $(CHAOS_PKG)
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZ_DECODE_EXECS) ./job/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZ_PARSE_EXECS) ./config/

## promtool: Prometheus' rule checker for deploy/monitoring_test.go (installed when missing).
promtool:
	@deploy/local/promtool.sh >/dev/null

## chromium: headless Chromium for the console's browser test (installed when missing).
chromium:
	@deploy/local/chromium.sh >/dev/null

## test-unit: unit tests only, no servers needed.
test-unit:
	$(GO) test -short -count=1 ./...

## chaos: the fault tests alone (kill -9, SIGTERM, SIGSTOP, broker and Postgres restarts).
chaos: stack-up
	$(ENV) $(GO) test -count=1 -v -timeout 10m $(CHAOS_PKG)

## soak-gc: the randomized race of both file GCs against the file service
## (TestGCRacesWithFileService; make test runs 3 rounds) for SOAK_MINUTES minutes. It prints
## GC_RACE_SEED; set it to replay the same choices.
SOAK_MINUTES ?= 10
soak-gc: stack-up
	$(ENV) GC_SOAK=$(SOAK_MINUTES)m $(GO) test -count=1 -v -run TestGCRacesWithFileService -timeout $$(( $(SOAK_MINUTES) + 10 ))m ./filereap/

## fuzz: the fuzz targets, FUZZTIME each (make test runs them by count, about 10 s each).
FUZZTIME ?= 2m
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./job/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./config/

## bench-volume: every job at production volume (issue 14 item 3), one benchmark each in
## internal/demo: BenchmarkVolume{MsgGap,TokenBlacklist,Graph,FileGC,Reports,ESForceMerge}.
## Pick some with VOLUME_BENCH (a -bench regexp). Defaults are small enough to iterate on the
## shared machine; production sizes (BENCHMARKS.md, "Jobs at production volume"):
##   VOLUME_MESSAGES=20000000 VOLUME_USERS=2000000 VOLUME_TOKENS=1000000 VOLUME_FILES=1000000
##   VOLUME_AUDIT_PER_SEC=20 VOLUME_ES_INDICES=1 VOLUME_ES_DOCS=670000 (command-line variables
##   reach the test as env). 1M files need ~1h of S3 PUTs here: BENCHMARKS.md has 100k and 300k.
VOLUME_BENCH    ?= Volume
VOLUME_MESSAGES ?= 1000000
bench-volume: stack-up
	$(ENV) VOLUME_MESSAGES=$(VOLUME_MESSAGES) nice $(GO) test -run='^$$' -bench='$(VOLUME_BENCH)' -benchtime=1x -v -timeout 180m ./internal/demo/

## bench: every benchmark once (figures in BENCHMARKS.md); BENCH=Scaling runs one.
BENCH ?= .
bench: stack-up
	$(ENV) $(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=1x -timeout 30m ./...

## bench-archive: partition_archive moving a 500k- and a 5M-row chat_messages month (time, peak
## RSS, bytes in S3); ARCHIVE_BENCH_ROWS=1000000 picks other sizes.
bench-archive: stack-up
	$(ENV) $(GO) test -run='^$$' -bench='ArchivePartition' -benchtime=1x -timeout 60m ./archive/

## bench-peers: dispatch throughput, job-service against River and Asynq on the same stack,
## back to back (bench/peers, a module of its own; not part of make test). PEERS_N jobs per
## run (50000; about 3 minutes). PEERS_BENCH=. runs bench-precision's benchmarks too.
PEERS_BENCH ?= Dispatch
bench-peers:
	$(STACK) up postgres redis rocketmq
	$(ENV) cd bench/peers && $(GO) test -run='^$$' -bench='$(PEERS_BENCH)' -benchtime=1x -timeout 30m .

## bench-precision: schedule precision (1,000 fires of jobs every second, idle and under ~5,000
## forced jobs/s, node RSS) and takeover after kill -9, job-service vs River vs Asynq (issue 14
## item 1; bench/peers, not part of make test). About 15 minutes; run under nice on a shared host.
bench-precision:
	$(STACK) up postgres redis rocketmq
	$(ENV) cd bench/peers && nice $(GO) test -run='^$$' -bench='Precision|Takeover' -benchtime=1x -timeout 60m .

vet:
	$(GO) vet ./...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
