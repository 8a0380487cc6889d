#!/usr/bin/python3
"""Images per second through the FID Inception in PyTorch: the same network
as scripts/fid_inception_ref.py (random weights; speed does not depend on
them), pytorch-fid's preprocessing (bilinear resize to 299x299) included,
inference mode, float32.

Run it on the fair CPU baseline: ../shared/bench/torch-cpu.sh
scripts/torch_inception_bench.py --threads 2. With --device cuda it times a
GPU (synchronised); --tf32 allows TensorFloat-32 there.

usage: torch_inception_bench.py [--batch 8] [--side 32] [--reps 3] [--threads N] [--device cpu|cuda] [--tf32]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fid_inception_ref import fid_inception, trunk  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dev = torch.device(a.device)
    net = fid_inception().to(dev).eval()
    x = torch.rand(a.batch, 3, a.side, a.side, device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        trunk(net, x)  # warm-up: allocation, autotuning
        sync()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            trunk(net, x)
            sync()
            times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(f"torch {torch.__version__} {a.device} threads {torch.get_num_threads()}: FID Inception batch {a.batch} "
          f"({a.side}x{a.side} -> 299x299): {t * 1e3:.0f} ms per batch (median of {a.reps}), {a.batch / t:.2f} images/s")


if __name__ == "__main__":
    sys.exit(main())
