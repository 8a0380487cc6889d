# vkgan build, test and shader targets. `make deps && make test` is all a
# fresh Debian/Ubuntu machine needs (plus Go, make and a C compiler for cgo).
GO ?= go

.PHONY: all deps build test test-validate shaders shaders-check bench vet clean

all: build

# Installs lavapipe, the Vulkan loader, glslc, spirv-tools and the
# validation layer (idempotent; uses sudo when not root).
deps:
	bash scripts/deps.sh

build:
	$(GO) build -o vkgan .

# The README's test command. Device tests fail instead of skipping when no
# Vulkan device is found.
test:
	VKGAN_REQUIRE_DEVICE=1 $(GO) test ./...

test-validate:
	VKGAN_REQUIRE_DEVICE=1 VKGAN_VALIDATE=1 $(GO) test ./...

shaders:
	cd shaders && $(GO) run gen.go -out spv

# Regenerates the SPIR-V into a temporary directory and compares it byte
# for byte with the committed shaders/spv/*.spv (stale, missing and extra
# files all fail), then runs spirv-val on each committed module.
#
# SPIR-V bytes depend on the glslc version: the committed modules come from
# Debian bookworm's glslc (shaderc 2023.2). Another glslc may emit different
# but equally valid bytes; regenerate with `make shaders` only with that
# version, or this check fails on every machine that has the pinned one.
shaders-check:
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "shaders-check: $$(glslc --version 2>&1 | head -n1) (committed SPIR-V is from shaderc 2023.2)"; \
	(cd shaders && $(GO) run gen.go -out "$$tmp"); \
	bad=0; \
	for f in "$$tmp"/*.spv; do \
		n=$$(basename "$$f"); \
		if [ ! -f "shaders/spv/$$n" ]; then echo "shaders-check: missing shaders/spv/$$n (run make shaders and commit it)"; bad=1; \
		elif ! cmp -s "$$f" "shaders/spv/$$n"; then echo "shaders-check: stale shaders/spv/$$n (run make shaders and commit it)"; bad=1; fi; \
	done; \
	for f in shaders/spv/*.spv; do \
		n=$$(basename "$$f"); \
		if [ ! -f "$$tmp/$$n" ]; then echo "shaders-check: extra $$f has no source (delete it)"; bad=1; fi; \
		spirv-val --target-env vulkan1.1 "$$f" || { echo "shaders-check: spirv-val rejects $$f"; bad=1; }; \
	done; \
	if [ $$bad -ne 0 ]; then exit 1; fi; \
	echo "shaders-check: $$(ls shaders/spv/*.spv | wc -l) modules up to date and valid"

bench:
	$(GO) run . bench

vet:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -f vkgan
	$(GO) clean -testcache
