GO      ?= go
GOROOT  := $(shell $(GO) env GOROOT)
WASMEXEC := $(GOROOT)/lib/wasm/go_js_wasm_exec
FUZZTIME ?= 1m

.PHONY: all build test test-native test-wasm vet fuzz bench clean

BENCH_SIZE ?= 1G

all: build

build:
	$(GO) build -o bin/freelunch ./cmd/freelunch

vet:
	$(GO) vet ./...

test-native:
	$(GO) test ./...

# The core under GOOS=js/wasm in Node. wasm_exec.js caps argv+env at 8 KiB, hence env -i.
test-wasm:
	env -i PATH="$(GOROOT)/bin:$(GOROOT)/lib/wasm:/usr/local/bin:/usr/bin:/bin" HOME="$(HOME)" \
		GOCACHE="$(shell $(GO) env GOCACHE)" GOMODCACHE="$(shell $(GO) env GOMODCACHE)" \
		GOOS=js GOARCH=wasm $(GO) test -exec="$(WASMEXEC)" ./core/...

test: vet test-native test-wasm

# Each fuzz target in turn for FUZZTIME (make fuzz FUZZTIME=10m); the seeds in each
# package's testdata/fuzz run in every go test. Results: docs/reliability.md.
FUZZ_TARGETS := ./core/safetensors:FuzzOpen ./core/safetensors:FuzzIndex ./core/config:FuzzParse ./core/plan:FuzzBuild

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "$(GO) test $$pkg -run '^$$' -fuzz '^$$fn$$' -fuzztime $(FUZZTIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME); \
	done

# Merge throughput against the I/O floor; generates models into .cache/bench once.
bench: build
	$(GO) build -o bin/bench ./cmd/bench
	bin/bench -size $(BENCH_SIZE)

clean:
	rm -rf bin web/main.wasm web/wasm_exec.js
