#!/bin/bash
# Every GPU figure issue 14 asks for, in one run on a machine with a GPU
# (see docs/BENCHMARKS.md, "GPUs"): the device list, `vkgan tune` for the
# DCGAN models, `vkgan bench -json`, the DCGAN steps at batch 64 and 128
# and the toy steps in vkgan, and the same steps in PyTorch eager on CUDA
# (fp32 and TF32). Built here, run there:
#
#   make build && go test -c -o .gpu/engine.test ./engine && cp vkgan .gpu/
#   (on the GPU machine, with the Vulkan loader's .debs in .gl/)
#   OUT=dir scripts/gpu_bench.sh
#
# Each part has its own timeout so one hang cannot eat the lease; results
# go to $OUT.
set -u
OUT=${OUT:?set OUT to a results directory}
bin=${VKGAN_BIN_DIR:-.gpu}
if ls .gl/*.deb >/dev/null 2>&1; then
	for f in .gl/*.deb; do dpkg -x "$f" /; done
	ldconfig
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
if ! "$bin/vkgan" devices 2>&1 | grep -qi nvidia; then
	export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
"$bin/vkgan" devices 2>&1 | tee "$OUT/devices.txt"
echo "== vkgan tune"
timeout 150 "$bin/vkgan" tune -model dcgan -size 32,64 -batch 64 2>&1 | tee "$OUT/tune.txt"
timeout 100 "$bin/vkgan" tune -model dcgan -size 64 -batch 128 2>&1 | tee -a "$OUT/tune.txt"
echo "== vkgan bench"
timeout 120 "$bin/vkgan" bench -json -repeat 20 >"$OUT/bench.json" 2>"$OUT/bench.err"
echo "== vkgan GAN step"
VKGAN_BENCH_BATCHES=64,128 timeout 150 "$bin/engine.test" -test.run XXX -test.bench GANStep \
	-test.benchtime 50x -test.v 2>&1 | tee "$OUT/ganstep.txt"
echo "== vkgan toy step"
timeout 60 "$bin/engine.test" -test.run XXX -test.bench ToyStep -test.benchtime 500x 2>&1 | tee "$OUT/toystep.txt"
export PYTHONUNBUFFERED=1
echo "== torch dcgan"
for b in 64 128; do
	timeout 90 python3 scripts/torch_dcgan_bench.py --device cuda --sizes 32,64 --batch $b --steps 50 --matmul
	timeout 90 python3 scripts/torch_dcgan_bench.py --device cuda --tf32 --sizes 32,64 --batch $b --steps 50
done 2>&1 | tee "$OUT/torch_dcgan.txt"
echo "== torch toy"
for p in small large; do
	timeout 60 python3 scripts/torch_toy_bench.py --device cuda --protocol $p --steps 200
done 2>&1 | tee "$OUT/torch_toy.txt"
echo done
