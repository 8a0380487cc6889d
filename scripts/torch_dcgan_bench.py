#!/usr/bin/python3
"""Times one training step of PyTorch's DCGAN example (dcgan/main.py).

Usage: torch_dcgan_bench.py [--sizes 32,64] [--batch 64] [--steps 5] [--matmul] [--threads N]
                            [--device cpu|cuda] [--tf32] [--json]
On CUDA, cuDNN picks its fastest algorithms (benchmark mode) and the clock
stops after the GPU has finished (synchronize). TF32 is off unless --tf32:
vkgan computes in plain fp32; --tf32 is what PyTorch does by default for
convolutions.
The models come from crosscheck.py (the example's architecture). Random
data stands in for the data set; the step is the example's loop body.
Prints seconds per step (median of --steps after one warm-up); --json adds
the process's peak RSS after each size.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crosscheck import Discriminator, Generator  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def step_time(size, batch, steps, nz=100, ngf=64, ndf=64, dev=torch.device("cpu")):
    torch.manual_seed(1)
    netG, netD = Generator(nz, ngf, 3, size).to(dev), Discriminator(ndf, 3, size).to(dev)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    crit = nn.BCELoss()
    real = torch.rand(batch, 3, size, size, device=dev) * 2 - 1
    ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)
    times = []
    warm = 1 if dev.type == "cpu" else 5
    for i in range(steps + warm):
        sync(dev)
        t0 = time.perf_counter()
        netD.zero_grad()
        errD_real = crit(netD(real), ones)
        errD_real.backward()
        fake = netG(torch.randn(batch, nz, 1, 1, device=dev))
        errD_fake = crit(netD(fake.detach()), zeros)
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        errG = crit(netD(fake), ones)
        errG.backward()
        optG.step()
        sync(dev)
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n=1024, reps=5, dev=torch.device("cpu")):
    a, b = torch.rand(n, n, device=dev), torch.rand(n, n, device=dev)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        sync(dev)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(dev)
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
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--tf32", action="store_true", help="on CUDA, allow TF32 (PyTorch's default for convolutions)")
    ap.add_argument("--matmul-n", type=int, default=1024)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    where = f"{torch.get_num_threads()} threads"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        where = f"{torch.cuda.get_device_name()}, {'TF32' if a.tf32 else 'fp32'}"
    out = []
    if a.matmul:
        n = a.matmul_n
        g = matmul_gflops(n, dev=dev)
        out.append({f"matmul_{n}_gflops": g, "where": where, "torch": torch.__version__})
        if not a.json:
            print(f"pytorch {torch.__version__} ({where}): matmul {n}^3: {g:.1f} GFLOP/s")
    for s in (int(x) for x in a.sizes.split(",") if x):
        sec = step_time(s, a.batch, a.steps, dev=dev)
        # Peak RSS of the process so far: run one size per process to
        # compare it with vkgan's for that model.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.append({"size": s, "batch": a.batch, "s_per_step": sec, "maxrss_mib": rss, "where": where,
                    "torch": torch.__version__})
        if not a.json:
            print(f"pytorch {torch.__version__} ({where}): {s}x{s} batch {a.batch}: {1e3 * sec:.2f} ms/step")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
