#!/usr/bin/env bash
# Runs a PyTorch script as the fair CPU baseline: Debian's PyTorch 1.13 with
# the OpenMP build of OpenBLAS on every core. As installed, python3-torch
# links the reference BLAS (one slow thread), and the pthread OpenBLAS build
# fights PyTorch's own OpenMP threads; both make PyTorch look 2-4x slower
# than it is. The OpenMP OpenBLAS is unpacked into a cache directory and put
# first on the library path for this one command: nothing on the system
# changes.
#
# Usage: scripts/torch_cpu.sh SCRIPT.py [ARGS...]
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vkgan/openblas-openmp
libdir=$cache/usr/lib/x86_64-linux-gnu/openblas-openmp
if [ ! -e "$libdir/libblas.so.3" ]; then
	if ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
		echo "torch_cpu.sh: python3-torch is not installed (make deps-crosscheck installs it)" >&2
		exit 1
	fi
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	if ! (cd "$work" && apt-get download libopenblas0-openmp >/dev/null 2>&1); then
		echo "torch_cpu.sh: cannot download libopenblas0-openmp (run apt-get update once)" >&2
		exit 1
	fi
	mkdir -p "$cache"
	dpkg -x "$work"/libopenblas0-openmp_*.deb "$cache"
fi
# Some hosts set OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE for older builds;
# they slow this one down.
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
	LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" /usr/bin/python3 "$@"
