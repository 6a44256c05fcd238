# tmbox — see README.md and docs/development.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X github.com/tmbox/tmbox/internal/version.version=$(VERSION) \
           -X github.com/tmbox/tmbox/internal/version.commit=$(COMMIT)

# Every test that talks to the test cluster runs in a loopback-only network
# namespace; go test runs each test binary through this wrapper.
NETNS_EXEC := $(CURDIR)/hack/netns-exec
GOTEST     ?= go test
TESTFLAGS  ?= -timeout 30m
CLUSTER_STATE := $(or $(XDG_RUNTIME_DIR),/tmp)/tmbox-testcluster

.PHONY: build test test-unit test-integration testcluster-bin kind-image-bin fuzz lint bench cluster-up cluster-down clean

build: ## build bin/tmbox
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/tmbox ./cmd/tmbox

testcluster-bin: ## build (or find cached) etcd, kube-*, kubectl and kwok
	@bash hack/build-testcluster.sh >/dev/null

# The kind tests run offline inside a network namespace: the node image's
# cold stages (debootstrap, the module proxy) must run here, on the host,
# first. As root only (debootstrap, the image import); test/kind needs root.
kind-image-bin: ## build (or find cached) the kind node image for test/kind (root; skipped otherwise)
	@if [ "$$(id -u)" -eq 0 ]; then bash hack/kindimage/build.sh >/dev/null; else echo "kind node image: not root, not built (test/kind needs root)"; fi

test: testcluster-bin kind-image-bin ## unit and integration tests, the integration ones on the real test cluster; then make fuzz
	TMBOX_TESTCLUSTER_BIN=$$(bash hack/build-testcluster.sh) $(GOTEST) $(TESTFLAGS) -exec $(NETNS_EXEC) ./...
	@$(MAKE) --no-print-directory fuzz

test-unit: ## unit tests only (integration tests report themselves skipped)
	$(GOTEST) $(TESTFLAGS) -short ./...

test-integration: testcluster-bin ## integration tests only
	TMBOX_TESTCLUSTER_BIN=$$(bash hack/build-testcluster.sh) $(GOTEST) $(TESTFLAGS) -exec $(NETNS_EXEC) -run Integration ./...

bench: build testcluster-bin ## measure tmbox against the API server's floor and a hand-made kubectl baseline on real test clusters, and its startup; rewrites docs/performance.md (~15 min)
	go build -o bin/bench ./hack/bench
	go test -run '^$$' -bench 'VerifyBundle/(verify-file|sha256sum-file)' -count 3 ./bundle | tee bin/bundle-bench.txt
	TMBOX_TESTCLUSTER_BIN=$$(bash hack/build-testcluster.sh) $(NETNS_EXEC) bin/bench -bundle-bench bin/bundle-bench.txt $(BENCHFLAGS)

# Each fuzz target runs for FUZZTIME, one after the other (go test -fuzz
# takes one target of one package at a time).
FUZZTIME ?= 10s

fuzz: ## run the fuzz targets (catalog, bundle manifest, config, add-ons decoders) for FUZZTIME each
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./catalog
	go test -run '^$$' -fuzz '^FuzzDecodeManifest$$' -fuzztime $(FUZZTIME) ./bundle
	go test -run '^$$' -fuzz '^FuzzReadConfig$$' -fuzztime $(FUZZTIME) ./cmd/tmbox
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./installer/addons

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd hack/tools && go vet ./etcd

.PHONY: test-kind
test-kind: ## tmbox on real kind clusters (test engine + hack/kindimage's node image), inside a loopback-only namespace (root)
	CI=$${CI:-true} $(GOTEST) -exec $(NETNS_EXEC) -count=1 -timeout 40m -v ./test/kind/

.PHONY: kind-image
kind-image: ## build (or find cached) the kind node image from source, hack/kindimage (root; cold ~25 min, warm <1 s); prints kindest/node:…@sha256:…
	@bash hack/kindimage/build.sh

cluster-up: testcluster-bin ## start a test cluster in the background for manual use; prints its kubeconfig
	@mkdir -p $(CLUSTER_STATE)
	@if [ -f $(CLUSTER_STATE)/pid ] && kill -0 $$(cat $(CLUSTER_STATE)/pid) 2>/dev/null; then \
	  echo "a test cluster is already running (pid $$(cat $(CLUSTER_STATE)/pid)); make cluster-down first" >&2; exit 1; fi
	go build -o $(CLUSTER_STATE)/testcluster ./internal/testcluster/cmd/testcluster
	@rm -f $(CLUSTER_STATE)/kubeconfig
	@TMBOX_TESTCLUSTER_BIN=$$(bash hack/build-testcluster.sh) setsid $(NETNS_EXEC) $(CLUSTER_STATE)/testcluster \
	  -kubeconfig $(CLUSTER_STATE)/kubeconfig -pidfile $(CLUSTER_STATE)/pid >$(CLUSTER_STATE)/log 2>&1 </dev/null &
	@for i in $$(seq 1 600); do [ -f $(CLUSTER_STATE)/kubeconfig ] && break; \
	  if grep -q '^error' $(CLUSTER_STATE)/log 2>/dev/null; then cat $(CLUSTER_STATE)/log >&2; exit 1; fi; sleep 0.2; done
	@[ -f $(CLUSTER_STATE)/kubeconfig ] || { cat $(CLUSTER_STATE)/log >&2; exit 1; }
	@echo "$(CLUSTER_STATE)/kubeconfig"
	@echo "The cluster lives in its own loopback-only network namespace; reach it with:" >&2
	@echo "  nsenter --net=/proc/$$(cat $(CLUSTER_STATE)/pid)/ns/net $$(bash hack/build-testcluster.sh)/kubectl --kubeconfig $(CLUSTER_STATE)/kubeconfig get nodes" >&2

cluster-down: ## stop the cluster started by cluster-up
	@if [ -f $(CLUSTER_STATE)/pid ] && kill -0 $$(cat $(CLUSTER_STATE)/pid) 2>/dev/null; then \
	  pid=$$(cat $(CLUSTER_STATE)/pid); kill -TERM $$pid; \
	  for i in $$(seq 1 150); do kill -0 $$pid 2>/dev/null || break; sleep 0.2; done; \
	  if kill -0 $$pid 2>/dev/null; then echo "test cluster (pid $$pid) did not stop" >&2; exit 1; fi; \
	  echo "test cluster stopped"; else echo "no test cluster running"; fi
	@rm -f $(CLUSTER_STATE)/pid $(CLUSTER_STATE)/kubeconfig

clean: ## remove build output (the cached test-cluster binaries stay; see docs/development.md)
	rm -rf bin
	go clean -testcache
