GO      ?= go
GOROOT  := $(shell $(GO) env GOROOT)
FUZZTIME ?= 1m

.PHONY: all build wasm demo run test test-native test-wasm test-js test-e2e test-e2e-big vet fuzz bench bench-web clean

BENCH_SIZE ?= 1G

# Native builds and tests use Go's SIMD experiment: on amd64 machines with AVX2 the BF16
# conversions, the two-model merge loops and the top-k selection run in vector registers
# (core/dtype/convert_simd.go, core/merge/simd.go), with the same output bits as the
# portable loops. Without it (a plain `go build`, other architectures, WebAssembly) the
# portable loops run.
SIMD := GOEXPERIMENT=simd

all: build

# npm ci (playwright-core for the browser tests, wabt to assemble the kernels), once per
# lock file; .ci/run runs it too, and installs chromium.
NODE_MODULES := node_modules/playwright-core/package.json
$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The server embeds index.html and web/, including the build outputs made here first
# (web/main.wasm, web/wasm_exec.js, web/demo/): build them before the server.
build: wasm demo
	$(SIMD) $(GO) build -o bin/freelunch ./cmd/freelunch
	$(SIMD) $(GO) build -o bin/freelunch-server ./cmd/server

wasm: web/kernels.wasm
	GOOS=js GOARCH=wasm $(GO) build -trimpath -o web/main.wasm ./wasm
	cp "$(GOROOT)/lib/wasm/wasm_exec.js" web/wasm_exec.js

# The page's WebAssembly SIMD kernels, assembled from web/kernels.wat with npm's wabt.
web/kernels.wasm: web/kernels.wat tools/kernels.mjs $(NODE_MODULES)
	node tools/kernels.mjs

# The demo models of the page's "Try the demo" button (deterministic, a few MB).
demo:
	$(GO) run ./cmd/demomodels web/demo

# Build everything, then serve the page on http://127.0.0.1:8080/ (ADDR=host:port to change).
ADDR ?= 127.0.0.1:8080
run: build
	bin/freelunch-server -addr $(ADDR)

vet:
	$(GO) vet ./...
	$(SIMD) $(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./wasm/

# Everything with the vector loops, and the core again with the portable ones.
test-native:
	$(SIMD) $(GO) test ./...
	$(GO) test ./core/...

# The core and the wasm/ bridge under GOOS=js/wasm in Node, through tools/go_js_wasm_exec:
# Go's runner plus the imports the page gives the bridge (the SIMD kernels of
# web/kernels.wasm; wasm/kernels_test.go compares them with the portable loops).
# wasm_exec.js caps argv+env at 8 KiB, hence env -i.
test-wasm: web/kernels.wasm
	env -i PATH="$(GOROOT)/bin:$(GOROOT)/lib/wasm:/usr/local/bin:/usr/bin:/bin" HOME="$(HOME)" \
		GOROOT="$(GOROOT)" GOCACHE="$(shell $(GO) env GOCACHE)" GOMODCACHE="$(shell $(GO) env GOMODCACHE)" \
		GOOS=js GOARCH=wasm $(GO) test -exec="$(CURDIR)/tools/go_js_wasm_exec" ./core/... ./wasm/

# The page's pure modules under Node (and that web/kernels.wat assembles, with npm's wabt).
test-js: $(NODE_MODULES)
	node --test web/

test-e2e: build $(NODE_MODULES)
	node --test --test-concurrency=1 e2e/

# The WebAssembly-memory bound on 1.2 GB of generated inputs (slow: not in `make test`).
test-e2e-big: build $(NODE_MODULES)
	node --test e2e/memory.big.mjs

test: vet test-native test-wasm test-js test-e2e

# Each fuzz target in turn for FUZZTIME (make fuzz FUZZTIME=10m); the seeds in each
# package's testdata/fuzz run in every go test. Results: docs/reliability.md.
FUZZ_TARGETS := ./core/safetensors:FuzzOpen ./core/safetensors:FuzzIndex ./core/config:FuzzParse ./core/plan:FuzzBuild

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "$(GO) test $$pkg -run '^$$' -fuzz '^$$fn$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s; \
	done

# Merge throughput against the I/O floor; generates models into .cache/bench once.
bench: build
	$(SIMD) $(GO) build -o bin/bench ./cmd/bench
	bin/bench -size $(BENCH_SIZE)

# The same merges in headless Chromium through the page and its Worker, timed from the
# click on Merge to the download link, next to `freelunch merge --threads 1`, built as
# `make build` builds it and as a plain go build (the portable loops, which WebAssembly
# runs too) (not in `make test`). Needs the models of `make bench` in $(CACHE)/$(BENCH_SIZE).
CACHE ?= .cache/bench
bench-web: build $(NODE_MODULES)
	$(GO) build -o bin/freelunch-portable ./cmd/freelunch
	node e2e/bench-web.mjs --dir $(CACHE)/$(BENCH_SIZE) --size $(BENCH_SIZE)

clean:
	rm -rf bin web/main.wasm web/wasm_exec.js web/kernels.wasm web/demo
