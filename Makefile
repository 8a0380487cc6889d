# vkgan build, test and shader targets. `make deps test` is all a
# fresh Debian/Ubuntu machine needs (plus Go, make and a C compiler for cgo).
GO ?= go

.PHONY: all deps deps-crosscheck deps-mpi build build-mpi test test-mpi test-validate shaders shaders-check bench bench-step bench-toy vet clean data demo crosscheck

all: build

# Installs lavapipe, the Vulkan loader, glslc, spirv-tools and the
# validation layer (idempotent; uses sudo when not root).
deps:
	bash scripts/deps.sh

build:
	$(GO) build -o vkgan .

# Open MPI from Debian (libopenmpi-dev, openmpi-bin) when mpicc is missing;
# uses sudo when not root. Another MPI already on PATH is used as it is.
deps-mpi:
	@command -v mpicc >/dev/null || { \
		command -v apt-get >/dev/null || { echo "deps-mpi: install an MPI (Open MPI or MPICH) with mpicc on PATH"; exit 1; }; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends libopenmpi-dev openmpi-bin; }

# cgo's flags from the MPI compiler wrapper, which knows its include and
# library paths (Open MPI's --showme), else from pkg-config (Debian's MPICH
# ships mpich.pc).
MPI_CFLAGS = $$(mpicc --showme:compile 2>/dev/null || pkg-config --cflags mpich)
MPI_LDFLAGS = $$(mpicc --showme:link 2>/dev/null || pkg-config --libs mpich)

# ./vkgan with the MPI binding (internal/mpi with -tags mpi), for mpirun/srun.
build-mpi: deps-mpi
	CGO_CFLAGS="$(MPI_CFLAGS)" CGO_LDFLAGS="$(MPI_LDFLAGS)" $(GO) build -tags mpi -o vkgan .

# The README's test command. Device tests fail instead of skipping when no
# Vulkan device is found.
# A package gets 25 minutes rather than go test's 10: train/rundir's kill
# tests alone take 2-3 minutes on an idle 2-core machine and over 10 on a
# busy shared one; a real hang still fails, well inside CI's 30 minutes.
test:
	VKGAN_REQUIRE_DEVICE=1 $(GO) test -timeout 25m ./...

# The MPI binding: vet with the tag, its tests on 2 ranks (--oversubscribe:
# CI may have fewer cores; --allow-run-as-root: CI is root), then as one
# process with the tag (which also starts the fault jobs under mpirun) and
# without it; then data-parallel training (mpi_train_test.go).
test-mpi: deps-mpi
	CGO_CFLAGS="$(MPI_CFLAGS)" CGO_LDFLAGS="$(MPI_LDFLAGS)" $(GO) vet -tags mpi ./internal/mpi
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	CGO_CFLAGS="$(MPI_CFLAGS)" CGO_LDFLAGS="$(MPI_LDFLAGS)" $(GO) test -tags mpi -c -o "$$d/mpi.test" ./internal/mpi; \
	echo "test-mpi: mpirun -np 2"; \
	VKGAN_MPI_TEST_NP=2 mpirun --oversubscribe --allow-run-as-root -np 2 "$$d/mpi.test" -test.count=1 -test.timeout 5m; \
	echo "test-mpi: one process"; \
	"$$d/mpi.test" -test.count=1 -test.timeout 5m
	$(GO) test -count=1 ./internal/mpi
	@# Data-parallel training: ./vkgan with MPI under mpirun -np 2 (tiny
	@# DCGANs on one shared device): weights equal on both ranks after
	@# every step, kill and resume, a dead and a hung rank; the toy on 2
	@# ranks against one process.
	$(MAKE) build-mpi
	CGO_CFLAGS="$(MPI_CFLAGS)" CGO_LDFLAGS="$(MPI_LDFLAGS)" VKGAN_MPI_BIN="$(CURDIR)/vkgan" VKGAN_REQUIRE_DEVICE=1 \
		$(GO) test -tags mpi -run '^TestMPI' -count=1 -timeout 15m .

test-validate:
	VKGAN_REQUIRE_DEVICE=1 VKGAN_VALIDATE=1 $(GO) test -timeout 25m -count=1 ./...

# SPIR-V into shaders/spv, and the Go kernel table (descriptors and
# push-constant structs read from the same GLSL) into shaders/zkernels.go.
shaders:
	cd shaders && $(GO) run gen.go -out spv -go zkernels.go

# Regenerates the SPIR-V and the Go kernel table into a temporary directory
# and compares them byte for byte with the committed shaders/spv/*.spv and
# shaders/zkernels.go (stale, missing and extra files all fail; a GLSL
# interface edited without make shaders fails on both), then runs spirv-val
# on each committed module.
#
# SPIR-V bytes depend on the glslc version: the committed modules come from
# Debian bookworm's glslc (shaderc 2023.2). Another glslc may emit different
# but equally valid bytes; regenerate with `make shaders` only with that
# version, or this check fails on every machine that has the pinned one.
shaders-check:
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "shaders-check: $$(glslc --version 2>&1 | head -n1) (committed SPIR-V is from shaderc 2023.2)"; \
	(cd shaders && $(GO) run gen.go -out "$$tmp" -go "$$tmp/zkernels.go"); \
	bad=0; \
	if ! cmp -s "$$tmp/zkernels.go" shaders/zkernels.go; then echo "shaders-check: stale shaders/zkernels.go (run make shaders and commit it)"; bad=1; fi; \
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
	echo "shaders-check: $$(ls shaders/spv/*.spv | wc -l) modules and shaders/zkernels.go up to date and valid"

bench:
	$(GO) run . bench

# The emoji data set (npm packages, checked against pinned hashes) in data/emoji.
data: build
	./vkgan data emoji

# The main job: set-up, emoji data, training sized for the device, and the
# paths of the samples and plot at the end (runs/demo-DATE). Ctrl-C stops it
# with a checkpoint; `./vkgan train -resume runs/demo-DATE` continues.
demo: deps build data
	./vkgan train -demo -max-time 10m -out runs/demo-$$(date +%Y%m%d-%H%M%S)

# PyTorch for the cross-check and the baseline timings (Debian's build).
deps-crosscheck:
	@command -v apt-get >/dev/null || { echo "deps-crosscheck: install PyTorch and numpy for /usr/bin/python3"; exit 1; }
	@dpkg-query -W -f='$${Status}' python3-torch 2>/dev/null | grep -q "install ok installed" || \
		{ sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends python3-torch python3-numpy; }
	@dpkg-query -W -f='$${Status}' python3-torchvision 2>/dev/null | grep -q "install ok installed" && \
	 dpkg-query -W -f='$${Status}' python3-scipy 2>/dev/null | grep -q "install ok installed" || \
		{ sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends python3-torchvision python3-scipy; }

# One training step in vkgan and in PyTorch's DCGAN example from the same
# weights, batch and noise: losses, gradients, updated weights and the
# checkpoint loaded into PyTorch must agree (scripts/crosscheck.py).
crosscheck: deps-crosscheck
	@set -e; for s in 16 32 64 128; do \
		d=$$(mktemp -d); \
		echo "== crosscheck $${s}x$${s}"; \
		$(GO) run ./internal/crosscheck -out $$d -size $$s -width 16 -batch 8; \
		/usr/bin/python3 scripts/crosscheck.py $$d; rm -rf $$d; \
	done; \
	for c in 1 4; do \
		d=$$(mktemp -d); \
		echo "== crosscheck 32x32, $$c channels"; \
		$(GO) run ./internal/crosscheck -out $$d -size 32 -width 16 -batch 8 -channels $$c; \
		/usr/bin/python3 scripts/crosscheck.py $$d; rm -rf $$d; \
	done; \
	for o in "-loss hinge -sn -d-norm none" \
		"-loss hinge -sn -sn-g -d-norm none -r1 1 -augment color,translation,cutout -flip" \
		"-loss ls -classes 3" "-classes 4 -sn -d-norm none -augment translation"; do \
		d=$$(mktemp -d); \
		echo "== crosscheck 32x32 $$o"; \
		$(GO) run ./internal/crosscheck -out $$d -size 32 -width 16 -batch 8 $$o; \
		/usr/bin/python3 scripts/crosscheck.py $$d; rm -rf $$d; \
	done; \
	d=$$(mktemp -d); \
	echo "== crosscheck the FID Inception, block by block (random weights, .pth zip, legacy and safetensors)"; \
	/usr/bin/python3 scripts/fid_inception_ref.py $$d --side 32 --n 3; \
	VKGAN_INCEPTION_REF=$$d VKGAN_REQUIRE_DEVICE=1 $(GO) test ./engine/quality/ -run InceptionMatchesPyTorch -count=1 -v; \
	rm -rf $$d; \
	echo "== crosscheck FID and KID against numpy and scipy, the .pth reader against torch.save"; \
	$(GO) test ./engine/quality/ ./internal/torchfile/ -run 'FixturesRegenerate|MatchesScipy|Match(es)?Numpy|Generated' -count=1

# vkgan beside the fair PyTorch baseline (PyTorch 1.13 with the OpenMP
# OpenBLAS on every core, scripts/torch_cpu.sh) in one run: WINDOWS rounds,
# each case once per side per round, the ratio per round and its median.
WINDOWS ?= 3

# The DCGAN-32 and -64 steps (batch 64), the 1024^3 matmul, and memory.
bench-step: deps-crosscheck build
	$(GO) test -c -o engine.test ./engine
	VKGAN_REQUIRE_DEVICE=1 /usr/bin/python3 scripts/bench_vs_torch.py step --windows $(WINDOWS)

# The toy GAN's step, both protocols.
bench-toy: deps-crosscheck
	$(GO) test -c -o engine.test ./engine
	VKGAN_REQUIRE_DEVICE=1 /usr/bin/python3 scripts/bench_vs_torch.py toy --windows $(WINDOWS)

vet:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -f vkgan
	rm -rf runs/demo-*
	$(GO) clean -testcache
