#!/usr/bin/python3
"""Write the torchfile test fixtures with Debian's torch (1.13).

    /usr/bin/python3 internal/torchfile/testdata/gen.py [OUTDIR]

OUTDIR defaults to this script's directory. Each state_dict is saved in
both torch.save formats, NAME_zip.pt (the default since PyTorch 1.6) and
NAME_legacy.pt (_use_new_zipfile_serialization=False), and expected.json
holds every tensor's dtype, shape and values: float32 bit patterns of
tensor.float() for floating tensors, integers for int64 ones, in row-major
order of the logical (not stored) layout.

Values come from exact arithmetic on small integers, not from torch's
random generator, so a newer torch writes the same numbers. The legacy
files name storages by memory address and so differ from run to run; the
Go test compares what they decode to, not their bytes.

The bad_* files are valid torch.save output that torchfile refuses: a
nested checkpoint, an int32 tensor, a bare tensor, an expanded view.
"""

import collections
import json
import os
import sys

import torch


def ramp(n, dtype=torch.float32, scale=0.25, shift=0.0):
    """n distinct values, exact in float16 and bfloat16 when small."""
    return (torch.arange(n, dtype=torch.float64) * scale - shift).to(dtype)


def state():
    sd = collections.OrderedDict()
    sd["conv.weight"] = ramp(48, shift=6).reshape(4, 3, 2, 2)
    sd["linear.weight"] = ramp(15, scale=1 / 3).reshape(3, 5)
    sd["linear.bias"] = ramp(3, shift=-1)
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    # Views saved as they are: torch.save keeps the strides and offset.
    sd["transposed"] = ramp(12).reshape(3, 4).t()
    sd["strided"] = ramp(24, shift=3).reshape(4, 6)[1:, ::2]
    shared = ramp(12, scale=0.5, shift=2)
    sd["shared.a"] = shared[2:5]
    sd["shared.b"] = shared[5:11].view(2, 3)
    sd["shared.c"] = shared[1:9].view(2, 4).t()
    sd["special"] = torch.tensor(
        [-0.0, float("inf"), float("-inf"), float("nan"), 1e-45, 3.4028234663852886e38, 0.1],
        dtype=torch.float32,
    )
    sd["double"] = torch.tensor(
        [[0.1, -2.5, 1e300], [1e-50, -1e300, 1.0000000596046448]], dtype=torch.float64
    )
    sd["half"] = torch.tensor(
        [0.0, -0.0, 1.0, 65504.0, 2.0**-24, 1e-5, float("inf"), float("nan"), -1.5],
        dtype=torch.float16,
    )
    sd["half_t"] = ramp(6, torch.float16).reshape(2, 3).t()
    sd["bf16"] = torch.tensor(
        [1.0, -2.5, 3.0e38, 1e-40, float("-inf"), float("nan")], dtype=torch.bfloat16
    )
    sd["param"] = torch.nn.Parameter(ramp(4, shift=0.5))
    sd["num_batches_tracked"] = torch.tensor(7)
    sd["longs"] = torch.tensor([-(2**63), 2**63 - 1, -1, 0, 42], dtype=torch.int64)
    sd["longs_t"] = torch.arange(6).reshape(2, 3).t()
    return sd


def module():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(ramp(p.numel(), scale=1 / 16, shift=i).reshape(p.shape))
        m[1].running_mean.copy_(ramp(4, shift=1))
        m[1].running_var.copy_(ramp(4, shift=-1))
        m[1].num_batches_tracked.fill_(5)
    return m.state_dict()  # an OrderedDict with _metadata, as pytorch-fid's


def bad():
    return {
        "bad_nested": {"state_dict": collections.OrderedDict(w=torch.ones(2)), "epoch": 3},
        "bad_int32": {"w": torch.ones(2), "i": torch.arange(3, dtype=torch.int32)},
        "bad_tensor": torch.ones(2),
        "bad_expand": {"e": torch.ones(1).expand(5)},
    }


def expected(sd):
    out = {}
    for name, t in sd.items():
        t = t.detach()
        e = {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        if t.dtype == torch.int64:
            e["i64"] = t.flatten().tolist()
        else:
            bits = t.float().contiguous().flatten().view(torch.int32).tolist()
            e["f32_bits"] = [b & 0xFFFFFFFF for b in bits]
        out[name] = e
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    files = {"state": state(), "module": module()}
    files.update(bad())
    for name, obj in files.items():
        torch.save(obj, os.path.join(outdir, name + "_zip.pt"))
        torch.save(obj, os.path.join(outdir, name + "_legacy.pt"), _use_new_zipfile_serialization=False)
    want = {name: expected(files[name]) for name in ("state", "module")}
    # One tensor per line: small diffs when a fixture changes.
    lines = []
    for name, tensors in want.items():
        body = ",\n".join("  %s: %s" % (json.dumps(f"{name}/{k}"), json.dumps(v)) for k, v in tensors.items())
        lines.append(body)
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
