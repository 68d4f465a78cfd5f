# jobgate — `make dev` runs it, `make test` runs every test (what CI runs).

# The podman v4 bindings need these tags to build without btrfs/devicemapper/gpgme headers.
TAGS    := remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp
GO      ?= go
export CGO_CFLAGS ?= -Wno-deprecated-declarations
IMAGE   ?= localhost/jobgate-examples:latest
BIN     := bin/jobgate

.PHONY: build dev ui-vendor images compose-images test test-unit test-redis-modes deps jaeger seaweedfs vet clean bench-dispatch bench-exec bench-scoring bench-batch bench-coldstart bench-sweeps gpu-check fuzz loadtest

build:
	$(GO) build -tags '$(TAGS)' -o $(BIN) ./cmd/jobgate

dev: deps build images
	./$(BIN) dev

# The portal's vendored libraries (uPlot, js-yaml), built files copied from
# the npm packages that ui-src/package-lock.json pins; the copies are
# committed, so building jobgate needs no Node.
ui-vendor:
	cd ui-src && npm ci --no-audit --no-fund
	cp ui-src/node_modules/uplot/dist/uPlot.esm.js ui-src/node_modules/uplot/dist/uPlot.min.css gateway/ui/vendor/
	cp ui-src/node_modules/js-yaml/dist/js-yaml.mjs gateway/ui/vendor/
	cp ui-src/node_modules/uplot/LICENSE gateway/ui/vendor/uPlot.LICENSE
	cp ui-src/node_modules/js-yaml/LICENSE gateway/ui/vendor/js-yaml.LICENSE

# The example image: static Go programs from examples/ (toolbox, train, iris-train, modelserver)
# on FROM scratch, built offline with podman (no registry is needed).
images:
	@mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/image/toolbox ./examples/toolbox
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/image/train ./examples/train
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/image/iris-train ./examples/iris-train
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/image/modelserver ./examples/modelserver
	cp examples/Containerfile bin/image/Containerfile
	podman build -q -t $(IMAGE) bin/image

# The images deploy/compose.local.yaml runs (jobgate, redis-server,
# prometheus, Jaeger), FROM scratch with binaries from this machine; no
# registry is needed. Rebuilt only when their files change.
compose-images:
	./deploy/local-images.sh

# deps installs what the integration tests need on Debian (as root), or says
# exactly what to install.
deps:
	@./.ci/deps.sh

# jaeger builds Jaeger v1.76.0 (tools/jaeger) for the tracing tests, once, into
# the test cache folder outside the clone (~/.cache/jobgate-test; reused after).
jaeger:
	@./.ci/jaeger.sh >/dev/null

# seaweedfs builds SeaweedFS's weed (tools/seaweedfs) for the S3 artifact
# store's tests, once, into the same test cache folder (reused after).
seaweedfs:
	@./.ci/seaweedfs.sh >/dev/null

# mlflow-js installs the npm mlflow client TestMLflowJSClient runs, once per
# lock file, into the same test cache folder (reused after).
mlflow-js:
	@./.ci/mlflow-js.sh >/dev/null

# test runs every test against a real redis-server, real podman and a real
# Jaeger and a real SeaweedFS (S3); here an integration test that would skip
# fails instead.
test: deps jaeger seaweedfs mlflow-js
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -count=1 -timeout 25m ./...
	@$(MAKE) --no-print-directory test-redis-modes REDIS_MODE_PKGS='$(REDIS_CORE_PKGS)'

test-unit:
	$(GO) test -tags '$(TAGS)' -short ./...

# test-redis-modes runs the packages that talk to Redis once on a 3-master
# Redis Cluster and once on a Sentinel set (a primary, a replica, three
# sentinels), as testenv.Redis starts them under JOBGATE_TEST_REDIS; the
# tests that restart, proxy or measure one Redis keep a single server.
# REDIS_MODES and REDIS_MODE_PKGS narrow it.
REDIS_MODES     ?= cluster sentinel
REDIS_MODE_PKGS ?= ./internal/store ./internal/placement ./internal/job ./internal/leader ./internal/cron \
	./internal/deploy ./internal/loghub ./internal/authcache ./queue ./gateway ./scoring ./worker ./cmd/jobgate
# REDIS_CORE_PKGS are the packages make test also runs on both: the store and
# the components on it (the gateway, worker and e2e suites take 10 minutes
# more per mode; run them with make test-redis-modes).
REDIS_CORE_PKGS ?= ./internal/store ./internal/placement ./internal/job ./internal/leader ./internal/cron \
	./internal/deploy ./internal/loghub ./internal/authcache ./queue ./scoring
test-redis-modes: deps jaeger seaweedfs
	@rc=0; for m in $(REDIS_MODES); do echo "== JOBGATE_TEST_REDIS=$$m"; \
	  JOBGATE_TEST_REDIS=$$m JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -count=1 -p 1 -timeout 40m $(REDIS_MODE_PKGS) || rc=1; done; exit $$rc

vet:
	$(GO) vet -tags '$(TAGS)' ./...

clean:
	rm -rf bin .jobgate

# Dispatch latency at idle, jobgate side by side with plain asynq (BENCHMARKS.md).
bench-dispatch:
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench 'DispatchIdle|AsynqDefaultIdle' -benchtime 30x ./cmd/jobgate

# Exec round trip into a running container, jobgate side by side with podman exec.
bench-exec:
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench 'ExecEcho' -benchtime 30x ./cmd/jobgate

# Scoring latency: the example modelserver direct, behind nginx and behind the
# scoring router, at concurrency 1 and 16 (BENCHMARKS.md).
bench-scoring:
	./scripts/bench-scoring.sh

# BENCHMARKS.md "Batch scoring": 100,000 Iris rows through the HTTP batch API
# and a 2-replica deployment, against a tuned client straight to the replicas
# (BATCH_ROWS, BATCH_CONCURRENCY to change the defaults).
bench-batch:
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench 'BatchIris' -benchtime 1x -timeout 60m -v ./cmd/jobgate

# BENCHMARKS.md "Sweeps": 64 trials over 4 workers, asha against random without early termination.
bench-sweeps:
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench 'SweepASHAvsRandom' -benchtime 1x -timeout 20m -v ./cmd/jobgate

# Cold start from zero: the first request to a deployment scaled to zero, held and answered.
bench-coldstart:
	JOBGATE_INTEGRATION=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench ColdStart -benchtime 20x ./cmd/jobgate

# Each fuzz target for FUZZTIME (their seed corpora already run in `make test`).
FUZZTIME ?= 30s
FUZZ_TARGETS := ./api:FuzzDecodeJobSpec ./internal/webhook:FuzzVerifyGitHub ./internal/webhook:FuzzVerifyStandard \
	./internal/schedule:FuzzParse ./internal/artifact:FuzzCheckKey ./gateway:FuzzArtifactAndModelPaths \
	./worker:FuzzParseMetricLine ./internal/tmpl:FuzzRender ./internal/tmpl:FuzzPrintfBound
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$fn ($$pkg)"; $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; done

# The load test of issue 14: jobgate beside asynq, bare podman run and nginx,
# scenarios a-g (LOADTEST_FLAGS='-scenario a,c' for some); rewrites its section
# of BENCHMARKS.md. Bounded to about 10 minutes on the 2-core machine.
LOADTEST_FLAGS ?= -scenario all
loadtest:
	$(GO) run -tags '$(TAGS)' ./loadtest $(LOADTEST_FLAGS) -report BENCHMARKS.md

# On a machine with an NVIDIA driver (no podman or Redis needed): list the
# GPUs, run a 1-GPU host-process job through `jobgate dev`, print PASS/FAIL.
gpu-check:
	./scripts/gpu-check.sh
