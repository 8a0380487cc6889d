#!/usr/bin/env python3
"""Read a safetensors file without the safetensors package (Debian has none).

The format: an 8-byte little-endian header length N, N bytes of JSON mapping
each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
relative to the data section that follows the header), an optional
"__metadata__" of strings, then raw little-endian data.

    safetensors_check.py FILE            one line per tensor, tab-separated:
                                         name, dtype, shape, sum of values
    safetensors_check.py --torch FILE    the same, computed from torch tensors

From Python: load_numpy(path) and load_state_dict(path) return dicts of numpy
arrays and torch tensors, in file order; model.load_state_dict(...) takes the
latter as it takes safetensors.torch.load_file's result.
"""

import argparse
import json
import math
import struct
import sys

import numpy as np

MAX_HEADER = 100 << 20

NUMPY_DTYPES = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "F16": np.float16,
    "U32": np.uint32,
    "I32": np.int32,
    "F32": np.float32,
    "U64": np.uint64,
    "I64": np.int64,
    "F64": np.float64,
    "BF16": np.uint16,  # raw bits; widened to float32 below
}


class FormatError(Exception):
    pass


def read_header(data, path="<bytes>"):
    """Check the file's layout; return (metadata, [(name, info)] in data order, data start)."""
    if len(data) < 8:
        raise FormatError(f"{path}: {len(data)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n < 2 or n > len(data) - 8 or n > MAX_HEADER:
        raise FormatError(f"{path}: bad header length {n} for a {len(data)}-byte file")

    def no_duplicates(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise FormatError(f"{path}: header has {k!r} twice")
            d[k] = v
        return d

    try:
        header = json.loads(bytes(data[8 : 8 + n]).decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise FormatError(f"{path}: __metadata__ is not a map of strings")
    start = 8 + n
    data_len = len(data) - start
    for name, info in header.items():
        if not isinstance(info, dict):
            raise FormatError(f"{path}: tensor {name!r}: not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in NUMPY_DTYPES:
            raise FormatError(f"{path}: tensor {name!r}: dtype {dtype!r} not handled here")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs):
            raise FormatError(f"{path}: tensor {name!r}: bad data_offsets {offs!r}")
    items = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    at = 0
    for name, info in items:
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if begin != at or end < begin or end > data_len:
            raise FormatError(f"{path}: tensor {name!r}: data_offsets {[begin, end]} do not follow on from {at}")
        size = math.prod(shape) * np.dtype(NUMPY_DTYPES[dtype]).itemsize
        if size != end - begin:
            raise FormatError(f"{path}: tensor {name!r}: shape {shape} of {dtype} needs {size} bytes, has {end - begin}")
        at = end
    if at != data_len:
        raise FormatError(f"{path}: data section is {data_len} bytes, tensors cover {at}")
    return metadata, items, start


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def load_numpy(path):
    """Return (dict name -> numpy array, metadata), tensors in file order."""
    data = _read(path)
    metadata, items, start = read_header(data, path)
    out = {}
    for name, info in items:
        begin, end = info["data_offsets"]
        dt = np.dtype(NUMPY_DTYPES[info["dtype"]]).newbyteorder("<")
        a = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize, offset=start + begin)
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.reshape(info["shape"])
    return out, metadata


TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "F32": "float32", "I64": "int64", "F64": "float64",
}


def load_state_dict(path):
    """Return a dict name -> torch tensor, in file order (a state_dict)."""
    import torch

    if sys.byteorder != "little":
        raise RuntimeError("load_state_dict reads raw little-endian data; use load_numpy")
    data = bytearray(_read(path))  # writable, so torch.frombuffer does not warn
    _, items, start = read_header(data, path)
    sd = {}
    for name, info in items:
        if info["dtype"] not in TORCH_DTYPES:
            raise FormatError(f"{path}: tensor {name!r}: dtype {info['dtype']} has no torch equivalent here")
        dtype = getattr(torch, TORCH_DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        if begin == end:
            t = torch.empty(info["shape"], dtype=dtype)
        else:
            count = (end - begin) // torch.empty(0, dtype=dtype).element_size()
            t = torch.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
            t = t.reshape(info["shape"]).clone()  # own its memory, not the file's buffer
        sd[name] = t
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch", action="store_true", help="load into torch tensors and sum those")
    ap.add_argument("file")
    args = ap.parse_args()
    try:
        _, items, _ = read_header(_read(args.file), args.file)
        dtypes = {name: info["dtype"] for name, info in items}
        if args.torch:
            tensors = {k: (v.shape, v.double().sum().item()) for k, v in load_state_dict(args.file).items()}
        else:
            arrays, _ = load_numpy(args.file)
            tensors = {k: (a.shape, float(a.astype(np.float64).sum())) for k, a in arrays.items()}
        for name, (shape, s) in tensors.items():
            print(f"{name}\t{dtypes[name]}\t{list(shape)}\t{s:.17g}")
    except (FormatError, OSError) as e:
        print(f"safetensors_check: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
