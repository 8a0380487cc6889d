#!/usr/bin/python3
"""Times one training step of PyTorch's DCGAN example (dcgan/main.py) on the CPU.

Usage: torch_dcgan_bench.py [--sizes 32,64] [--batch 64] [--steps 5] [--matmul] [--threads N] [--json]
The models come from crosscheck.py (the example's architecture). Random
data stands in for the data set; the step is the example's loop body.
Prints seconds per step (median of --steps after one warm-up).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crosscheck import Discriminator, Generator  # noqa: E402


def step_time(size, batch, steps, nz=100, ngf=64, ndf=64):
    torch.manual_seed(1)
    netG, netD = Generator(nz, ngf, 3, size), Discriminator(ndf, 3, size)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    crit = nn.BCELoss()
    real = torch.rand(batch, 3, size, size) * 2 - 1
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        netD.zero_grad()
        errD_real = crit(netD(real), ones)
        errD_real.backward()
        fake = netG(torch.randn(batch, nz, 1, 1))
        errD_fake = crit(netD(fake.detach()), zeros)
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        errG = crit(netD(fake), ones)
        errG.backward()
        optG.step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n=1024, reps=5):
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--matmul", action="store_true", help="also time a 1024^3 fp32 matmul")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch.set_num_threads (0: as installed; Debian's build picks 1 on some machines)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    out = []
    if a.matmul:
        g = matmul_gflops()
        out.append({"matmul_1024_gflops": g, "threads": torch.get_num_threads(), "torch": torch.__version__})
        if not a.json:
            print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): matmul 1024^3: {g:.1f} GFLOP/s")
    for s in (int(x) for x in a.sizes.split(",")):
        sec = step_time(s, a.batch, a.steps)
        out.append({"size": s, "batch": a.batch, "s_per_step": sec, "threads": torch.get_num_threads(),
                    "torch": torch.__version__})
        if not a.json:
            print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): {s}x{s} batch {a.batch}: {sec:.3f} s/step")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
