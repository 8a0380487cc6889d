#!/usr/bin/python3
"""vkgan against the fair PyTorch CPU baseline, side by side, in one run.

Usage: bench_vs_torch.py step|toy [--windows 3] [--engine-test BIN] [--vkgan BIN] [--json OUT]

step: the DCGAN-32 and DCGAN-64 training steps at batch 64 (the PyTorch
      example's widths) and the 1024^3 fp32 matmul.
toy:  the 2D toy GAN's step, small and large protocol.

Each window runs every case once in vkgan and once in PyTorch 1.13 with the
OpenMP OpenBLAS on all cores (scripts/torch_cpu.sh), one process per case,
so the two sides of a ratio are measured minutes apart on the same machine.
The machine is shared and noisy: a ratio is taken per window, and the table
gives the median over the windows with the range. For the DCGAN steps it
also reports memory: the device memory vkgan holds at the peak, the bytes
its tensors asked for, and each process's peak RSS.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH = [os.path.join(HERE, "torch_cpu.sh")]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_vs_torch: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def go_bench(binary, pattern, benchtime):
    """Runs one engine benchmark and returns its reported metrics by unit."""
    out = run([binary, "-test.run", "XXX", "-test.bench", pattern, "-test.benchtime", benchtime])
    for line in out.splitlines():
        if line.startswith("Benchmark"):
            fields = line.split()
            return {unit: float(v) for v, unit in zip(fields[2::2], fields[3::2])}
    sys.exit(f"bench_vs_torch: no result from {pattern}:\n{out}")


def torch_json(*args):
    out = run(TORCH + list(args))
    return json.loads(out.strip().splitlines()[-1])


def vkgan_matmul(vkgan):
    rows = json.loads(run([vkgan, "bench", "-json", "-kernel", "matmul", "-repeat", "5"]))
    for r in rows:
        if r["kernel"] == "matmul" and r["shape"].startswith("1024x1024x1024"):
            return r["gflops"]
    sys.exit("bench_vs_torch: vkgan bench printed no 1024^3 matmul")


def step_cases(a, threads):
    for size in (32, 64):
        def vk(size=size):
            m = go_bench(a.engine_test, f"^BenchmarkGANStep$/^{size}x{size}$/^b64$", "3x")
            return {"value": m["s/step"], "dev_mib": m["dev-MiB"], "tensor_mib": m["tensor-MiB"], "rss_mib": m["rss-MiB"]}

        def pt(size=size):
            r = torch_json(os.path.join(HERE, "torch_dcgan_bench.py"), "--sizes", str(size), "--steps", "3",
                           "--threads", threads, "--json")[0]
            return {"value": r["s_per_step"], "rss_mib": r["maxrss_mib"]}
        yield f"DCGAN-{size} step, batch 64", "s", False, vk, pt

    def vk_mm():
        return {"value": vkgan_matmul(a.vkgan)}

    def pt_mm():
        r = torch_json(os.path.join(HERE, "torch_dcgan_bench.py"), "--sizes", "", "--matmul", "--threads", threads,
                       "--json")[0]
        return {"value": r["matmul_1024_gflops"]}
    yield "1024^3 matmul", "GFLOP/s", True, vk_mm, pt_mm


def toy_cases(a, threads):
    for proto in ("small", "large"):
        def vk(proto=proto):
            return {"value": go_bench(a.engine_test, f"^BenchmarkToyStep$/^{proto}$", "200x")["ms/step"]}

        def pt(proto=proto):
            r = torch_json(os.path.join(HERE, "torch_toy_bench.py"), "--protocol", proto, "--threads", threads,
                           "--json")[0]
            return {"value": r["ms_per_step"]}
        yield f"toy step, {proto} protocol", "ms", False, vk, pt


def fmt(v):
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["step", "toy"])
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--engine-test", default="./engine.test", help="go test -c -o BIN ./engine")
    ap.add_argument("--vkgan", default="./vkgan")
    ap.add_argument("--json", help="also write every measurement here")
    a = ap.parse_args()
    threads = str(os.cpu_count())
    cases = list((step_cases if a.what == "step" else toy_cases)(a, threads))
    rec = {name: {"unit": unit, "higher_better": hb, "vkgan": [], "torch": []} for name, unit, hb, _, _ in cases}
    for w in range(a.windows):
        for name, unit, _, vk, pt in cases:
            print(f"window {w + 1}/{a.windows}: {name} ...", file=sys.stderr, flush=True)
            rec[name]["vkgan"].append(vk())
            rec[name]["torch"].append(pt())
    print(f"\nvkgan against PyTorch + OpenMP OpenBLAS ({threads} threads), {a.windows} windows; "
          "ratio > 1: vkgan faster")
    print("| case | vkgan, per window | PyTorch, per window | ratio per window | median ratio (range) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rec.items():
        v = [m["value"] for m in r["vkgan"]]
        t = [m["value"] for m in r["torch"]]
        ratios = [x / y if r["higher_better"] else y / x for x, y in zip(v, t)]
        r["ratios"] = ratios
        print(f"| {name} | {', '.join(fmt(x) for x in v)} {r['unit']} | {', '.join(fmt(x) for x in t)} {r['unit']} "
              f"| {', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    mem = [(n, r) for n, r in rec.items() if "rss_mib" in r["torch"][0]]
    if mem:
        print("\n| case | vkgan device memory held at peak | vkgan tensors at peak | vkgan peak RSS | PyTorch peak RSS |")
        print("| --- | --- | --- | --- | --- |")
        for name, r in mem:
            med = lambda side, k: statistics.median(m[k] for m in r[side])  # noqa: E731
            print(f"| {name} | {med('vkgan', 'dev_mib'):.0f} MiB | {med('vkgan', 'tensor_mib'):.0f} MiB "
                  f"| {med('vkgan', 'rss_mib'):.0f} MiB | {med('torch', 'rss_mib'):.0f} MiB |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rec, f, indent=1)


if __name__ == "__main__":
    main()
