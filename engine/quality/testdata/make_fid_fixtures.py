#!/usr/bin/python3
"""Write the FID and KID fixtures that engine/quality's tests compare against.

Run with Debian's python3 (apt-get install python3-numpy python3-scipy):

    /usr/bin/python3 engine/quality/testdata/make_fid_fixtures.py [--out DIR]

Each case is one safetensors file, fid_<case>.safetensors, so the Go tests
read it with internal/safetensors and other tools open it too:

  a, b              F32 [n, d]  two feature sets (fixed seeds)
  mu_a, sigma_a     F64         numpy mean(axis=0) and cov(rowvar=False) of a,
  mu_b, sigma_b                 in float64 as pytorch-fid computes them
  kid_x, kid_y      I64 [s, m]  the rows of a and of b in each KID subset,
                                drawn here without replacement
  kid_mmd2          F64 [s]     each subset's unbiased MMD^2

and string metadata:

  fid_scipy      pytorch-fid's calculate_frechet_distance: scipy's sqrtm of
                 sigma_a @ sigma_b, retried with 1e-6 added to both diagonals
                 only when sqrtm returns non-finite values
  scipy_eps      "true" when that retry happened
  fid_exact      the same distance with Tr sqrt(S1 S2) taken as the sum of
                 the square roots of the eigenvalues of the symmetric matrix
                 sqrt(S1) S2 sqrt(S1) (eigh; negative roundoff clamped to 0):
                 no offset, so it stays exact when a covariance is singular
  tr_sqrt_exact  that trace
  kid_mean, kid_std  numpy mean and std (ddof 0) of kid_mmd2, as
                 torch-fidelity reports them
  kid_degree, kid_coef0  the kernel (x.y/d + coef0)^degree

The KID estimator is torch-fidelity's (metric_kid.py, after Binkowski et
al.'s MMD-GAN code) written out again in float64 on the same subsets.
Values are repr() strings, which round-trip float64 exactly.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import scipy
import scipy.linalg

DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, array) in file order; metadata: str -> str."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = arr.tobytes()
        header[name] = {
            "dtype": DTYPES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def features(rng, n, d, shift):
    """Non-negative, correlated features, as pooled ReLU activations are."""
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    z = rng.standard_normal((n, d)) @ mix + shift
    return np.maximum(z, 0).astype(np.float32)


def fid_scipy(mu1, s1, mu2, s2, eps=1e-6):
    """pytorch-fid's formula, including when it adds eps."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    used_eps = False
    if not np.isfinite(covmean).all():
        used_eps = True
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)), used_eps


def tr_sqrt_exact(s1, s2):
    w, v = scipy.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ s2 @ root
    m = (m + m.T) / 2  # symmetric up to roundoff; eigh reads one triangle
    return float(np.sqrt(np.clip(scipy.linalg.eigvalsh(m), 0, None)).sum())


def mmd2_unbiased(x, y, degree=3, coef0=1.0):
    d = x.shape[1]
    kxx = (x @ x.T / d + coef0) ** degree
    kyy = (y @ y.T / d + coef0) ** degree
    kxy = (x @ y.T / d + coef0) ** degree
    m = x.shape[0]
    off_xx = kxx.sum() - np.trace(kxx)
    off_yy = kyy.sum() - np.trace(kyy)
    return (off_xx + off_yy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


# name, seed, (n_a, n_b), d, shift of b, KID subsets, KID subset size,
# channels that are always 0 in a and in b
CASES = [
    ("small", 1, (12, 9), 8, 0.4, 4, 6, None),
    ("full", 2, (300, 260), 64, 0.25, 10, 100, None),
    # n <= d: both covariances singular, but sqrtm copes. Every KID subset
    # of a is all of a, in another order.
    ("singular", 3, (40, 50), 64, 0.3, 5, 40, None),
    # Dead channels, which a small feature extractor can have: sqrtm fails
    # and pytorch-fid's offset moves the distance by about 4e-4 of itself.
    ("dead", 4, (100, 90), 32, 0.3, 3, 50, (slice(0, 4), slice(2, 6))),
]


def make_case(out, name, seed, ns, d, shift, subsets, size, dead):
    rng = np.random.default_rng(seed)
    a = features(rng, ns[0], d, 0.0)
    b = features(rng, ns[1], d, shift)
    if dead is not None:
        a[:, dead[0]] = 0
        b[:, dead[1]] = 0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a64.mean(axis=0), b64.mean(axis=0)
    s_a, s_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)

    fid, used_eps = fid_scipy(mu_a, s_a, mu_b, s_b)
    tr = tr_sqrt_exact(s_a, s_b)
    diff = mu_a - mu_b
    exact = float(diff.dot(diff) + np.trace(s_a) + np.trace(s_b) - 2 * tr)

    kx = np.stack([rng.choice(ns[0], size, replace=False) for _ in range(subsets)]).astype(np.int64)
    ky = np.stack([rng.choice(ns[1], size, replace=False) for _ in range(subsets)]).astype(np.int64)
    mmd = np.array([mmd2_unbiased(a64[kx[i]], b64[ky[i]]) for i in range(subsets)])

    meta = {
        "generator": "engine/quality/testdata/make_fid_fixtures.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fid_scipy": repr(fid),
        "scipy_eps": "true" if used_eps else "false",
        "fid_exact": repr(exact),
        "tr_sqrt_exact": repr(tr),
        "kid_mean": repr(float(np.mean(mmd))),
        "kid_std": repr(float(np.std(mmd))),
        "kid_degree": "3",
        "kid_coef0": "1",
    }
    write_safetensors(
        os.path.join(out, f"fid_{name}.safetensors"),
        [
            ("a", a), ("b", b),
            ("mu_a", mu_a), ("sigma_a", s_a), ("mu_b", mu_b), ("sigma_b", s_b),
            ("kid_x", kx), ("kid_y", ky), ("kid_mmd2", mmd),
        ],
        meta,
    )
    print(f"{name}: fid_scipy {fid!r} (eps {used_eps}) fid_exact {exact!r} "
          f"kid {meta['kid_mean']} +- {meta['kid_std']}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                   help="directory to write into (default: this script's)")
    args = p.parse_args()
    for c in CASES:
        make_case(args.out, *c)


if __name__ == "__main__":
    sys.exit(main())
