#version 450
// igemm_tiled: the GPU-class implicit-GEMM core, with igemm.comp's index
// maps (modes 0-3), push block and epilogue.
//
// C[m][n] = alpha * sum_k A[m][k] * B[k][n] + beta * C[m][n] (+ bias[n])
//
// A workgroup computes a BM x BN tile of C. The reduction runs in BK-deep
// slices staged through shared memory, double-buffered: the invocations
// fetch slice s+1 from global memory into registers, multiply slice s out
// of one shared buffer, then store slice s+1 into the other, so one
// barrier per slice suffices and the global loads' latency hides behind
// the FMAs. Each invocation owns a TM x TN register block whose rows and
// columns are strided by BM/TM and BN/TN: lanes of a subgroup read
// consecutive shared words (no bank conflicts) and the epilogue's stores
// to C are coalesced.
//
// Subgroup operations are not used: every A and B value already comes out
// of shared memory, where a same-address read is a broadcast, so
// subgroupBroadcast would add shuffles without saving a load.
//
// Split-K: the grid's z is (class, part), z = class * S + part, where the
// class is the backward-data parity class in mode 2 (sh*sw of them) and 0
// otherwise, so S is the grid's depth over the class count: a run-time
// value, which saves a pipeline per split. With S > 1 the reduction is
// split in S parts and binding 2 is scratch [S][M][Ntot]: each part
// stores its raw partial sums there and igemm_reduce.comp sums the parts
// in a fixed order and applies the epilogue. Ntot is the output's column
// count over all classes (mode 2: nb*h*w, else N).
//
// MODE: 0 matmul, 1 conv forward, 2 conv backward-data per parity class,
// 3 conv backward-weights; see igemm.comp for the maps. Every address is
// computed from (m, k) and (k, n) directly; igemm.comp's incremental
// counters only pay off on CPU drivers.

layout(local_size_x_id = 1) in;
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 2) const uint BM = 64;
layout(constant_id = 3) const uint BN = 64;
layout(constant_id = 4) const uint BK = 16;
layout(constant_id = 5) const uint TM = 4;
layout(constant_id = 6) const uint TN = 4;
layout(constant_id = 7) const bool VEC_A = false; // A rows contiguous along k, aligned, K%4 == 0 (see igemm.comp)
layout(constant_id = 8) const bool VEC_B = false; // MODE 0: B rows contiguous along n, aligned, N%4 == 0
layout(constant_id = 9) const bool EPI_ACT = false; // MODE 0: the epilogue's activation field (igemm.comp)

// The workgroup is exactly one invocation per register block; the host
// passes the same value as local_size_x.
const uint WM = BM / TM; // invocations along m
const uint WN = BN / TN; // invocations along n
const uint WG = WM * WN;

// One word of padding per shared row: the A tile is stored transposed
// (k-major) by invocations that walk k, which would otherwise hit one bank.
const uint BMP = BM + 1;
const uint BNP = BN + 1;

// Global-to-register staging: VA (VB) floats per load, EA (EB) loads per
// invocation per slice.
const uint VA = VEC_A ? 4 : 1;
const uint VB = VEC_B ? 4 : 1;
const uint BKU = BK / VA;
const uint BNU = BN / VB;
const uint EA = (BM * BKU + WG - 1) / WG;
const uint EB = (BK * BNU + WG - 1) / WG;
// The conv modes walk A along k; when WG is a multiple of the units per
// row, all of an invocation's A loads share one k, whose decomposition
// (integer divisions) fetch then does once.
const bool ONE_K = MODE != 0 && WG % BKU == 0;

layout(std430, binding = 0) readonly buffer A32 { float a32[]; };
layout(std430, binding = 0) readonly buffer A128 { vec4 a128[]; };
layout(std430, binding = 1) readonly buffer B32 { float b32[]; };
layout(std430, binding = 1) readonly buffer B128 { vec4 b128[]; };
layout(std430, binding = 2) buffer C32 { float c32[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform P {
    uint M, N, K;
    uint sAm, sAk, sBk, sBn, ldc;        // MODE 0
    uint nb, cin, h, w, cout, oh, ow;    // conv shapes: x [nb,cin,h,w], y [nb,cout,oh,ow]
    uint kh, kw, sh, sw, ph, pw;         // kernel, stride, padding
    float alpha, beta;
    uint hasBias;
    uint hp, wp;                         // igemm.comp's padded modes only; unused here
    uint yc, yc0;                        // conv forward: output channels, first channel written
    uint epi;                            // 1: per-row affine from bias[m], bias[M+m]; 2: ReLU;
                                         // MODE 0 with EPI_ACT: act.glsl's activation field
    float slope;
} p;

#include "act.glsl"

shared float As[2 * BK * BMP];
shared float Bs[2 * BK * BNP];

// Class geometry for MODE 2 (uniform across the workgroup).
uint clsH, clsW, firstH, firstW, rowsH, rowsW, tapsH, tapsW;
int qh, qw;

// kTerms returns k's contribution to A's and B's addresses and, for the
// conv modes, to the gathered input's row and column.
void kTerms(uint k, out int ka, out int kb, out int dh, out int dw) {
    dh = 0; dw = 0;
    if (MODE == 0) {
        ka = int(k * p.sAk);
        kb = int(k * p.sBk);
    } else if (MODE == 1) { // k = (ci, y, x) of the kernel
        uint x = k % p.kw, t = k / p.kw;
        uint y = t % p.kh, ci = t / p.kh;
        ka = int(k);
        kb = int((ci * p.h + y) * p.w + x);
        dh = int(y); dw = int(x);
    } else if (MODE == 2) { // k = (co, th, tw): the class's taps
        uint tw = k % tapsW, t = k / tapsW;
        uint th = t % tapsH, co = t / tapsH;
        uint khh = clsH + p.sh * th, kww = clsW + p.sw * tw;
        ka = int((co * p.cin * p.kh + khh) * p.kw + kww);
        kb = int(co * p.oh * p.ow) - int(th * p.ow) - int(tw);
        dh = -int(th); dw = -int(tw);
    } else { // MODE 3, k = (b, y, x) of the output
        uint x = k % p.ow, t = k / p.ow;
        uint y = t % p.oh, b = t / p.oh;
        int hoff = int(y * p.sh) - int(p.ph), woff = int(x * p.sw) - int(p.pw);
        ka = int(b * p.cout * p.oh * p.ow + y * p.ow + x);
        kb = int(b * p.cin * p.h * p.w) + hoff * int(p.w) + woff;
        dh = hoff; dw = woff;
    }
}

// Column n's B base address, the gathered input's row and column at k's
// zero shift (conv modes), and where the result goes: outCol in C (the
// epilogue adds (m + yc0) * mStrideOut) and scol in the split scratch.
void colTerms(uint n, out int base, out int h0, out int w0, out uint outCol, out uint scol) {
    h0 = 0; w0 = 0;
    if (MODE == 0) {
        base = int(n * p.sBn);
        outCol = n; scol = n;
    } else if (MODE == 1) {
        uint ohw = p.oh * p.ow;
        uint b = n / ohw, pix = n % ohw;
        uint y = pix / p.ow, x = pix % p.ow;
        h0 = int(y * p.sh) - int(p.ph);
        w0 = int(x * p.sw) - int(p.pw);
        base = int(b * p.cin * p.h * p.w) + h0 * int(p.w) + w0;
        outCol = b * p.yc * ohw + pix; scol = n;
    } else if (MODE == 2) {
        uint per = max(rowsH * rowsW, 1);
        uint b = n / per, r = n % per;
        uint jr = r / max(rowsW, 1), ic = r % max(rowsW, 1);
        h0 = int(jr) + qh;
        w0 = int(ic) + qw;
        base = int(b * p.cout * p.oh * p.ow) + h0 * int(p.ow) + w0;
        uint ih = firstH + p.sh * jr, iw = firstW + p.sw * ic;
        outCol = (b * p.cin * p.h + ih) * p.w + iw;
        scol = (b * p.h + ih) * p.w + iw;
    } else {
        uint khw = p.kh * p.kw;
        uint ci = n / khw, r = n % khw;
        uint y = r / p.kw, x = r % p.kw;
        h0 = int(y); w0 = int(x);
        base = int((ci * p.h + y) * p.w + x);
        outCol = n; scol = n;
    }
}

// Per-invocation staging state (uniform flags, and per-load geometry that
// does not change from slice to slice).
uint tid, kEnd, bh, bw; // bh, bw: bounds of the B gather
bool aAlongM, bAlongK;
uint aRowOff[EA];
bool aRowOk[EA];
int bBase[EB], bH0[EB], bW0[EB];
bool bColOk[EB];
vec4 ra[EA], rb[EB]; // the next slice, in registers

// fetch loads this invocation's share of the slice at k0 into ra, rb.
void fetch(uint k0) {
    int ka1 = 0;
    if (ONE_K) {
        uint k = k0 + tid % BKU * VA;
        int kb, dh, dw;
        kTerms(k < kEnd ? k : 0, ka1, kb, dh, dw);
    }
    for (uint i = 0; i < EA; ++i) {
        uint e = tid + i * WG;
        uint kl = aAlongM ? e / BM : e % BKU * VA;
        uint k = k0 + kl;
        int ka, kb, dh, dw;
        if (ONE_K) ka = ka1;
        else kTerms(k < kEnd ? k : 0, ka, kb, dh, dw);
        bool ok = aRowOk[i] && k < kEnd;
        uint idx = ok ? aRowOff[i] + uint(ka) : 0;
        if (VEC_A) {
            vec4 v = a128[idx >> 2];
            ra[i] = ok ? v : vec4(0);
        } else {
            float v = a32[idx];
            ra[i].x = ok ? v : 0.0;
        }
    }
    for (uint i = 0; i < EB; ++i) {
        uint e = tid + i * WG;
        uint kl = bAlongK ? e % BK : e / BNU;
        uint k = k0 + kl;
        int ka, kb, dh, dw;
        kTerms(k < kEnd ? k : 0, ka, kb, dh, dw);
        bool ok = bColOk[i] && k < kEnd;
        if (MODE != 0) ok = ok && uint(bH0[i] + dh) < bh && uint(bW0[i] + dw) < bw;
        uint idx = ok ? uint(bBase[i] + kb) : 0;
        if (VEC_B) {
            vec4 v = b128[idx >> 2];
            rb[i] = ok ? v : vec4(0);
        } else {
            float v = b32[idx];
            rb[i].x = ok ? v : 0.0;
        }
    }
}

// store writes ra, rb into shared buffer buf: A k-major, B n-minor.
void store(uint buf) {
    for (uint i = 0; i < EA; ++i) {
        uint e = tid + i * WG;
        if (e < BM * BKU) {
            uint ml = aAlongM ? e % BM : e / BKU;
            uint kl = aAlongM ? e / BM : e % BKU * VA;
            uint at = buf * BK * BMP + kl * BMP + ml;
            As[at] = ra[i].x;
            if (VEC_A) { As[at + BMP] = ra[i].y; As[at + 2 * BMP] = ra[i].z; As[at + 3 * BMP] = ra[i].w; }
        }
    }
    for (uint i = 0; i < EB; ++i) {
        uint e = tid + i * WG;
        if (e < BK * BNU) {
            uint kl = bAlongK ? e % BK : e / BNU;
            uint nl = bAlongK ? e / BK : e % BNU * VB;
            uint at = buf * BK * BNP + kl * BNP + nl;
            Bs[at] = rb[i].x;
            if (VEC_B) { Bs[at + 1] = rb[i].y; Bs[at + 2] = rb[i].z; Bs[at + 3] = rb[i].w; }
        }
    }
}

void main() {
    tid = gl_LocalInvocationID.x;
    uint tx = tid % WN, ty = tid / WN;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint S = gl_NumWorkGroups.z / (MODE == 2 ? p.sh * p.sw : 1);
    uint zc = gl_WorkGroupID.z / S, part = gl_WorkGroupID.z % S;

    uint ncols = p.N, Kc = p.K, Ntot = p.N;
    bh = p.h; bw = p.w;
    if (MODE == 2) {
        clsH = zc / p.sw;
        clsW = zc % p.sw;
        firstH = (clsH + p.sh * p.ph - p.ph) % p.sh;
        firstW = (clsW + p.sw * p.pw - p.pw) % p.sw;
        rowsH = firstH < p.h ? (p.h - firstH + p.sh - 1) / p.sh : 0;
        rowsW = firstW < p.w ? (p.w - firstW + p.sw - 1) / p.sw : 0;
        tapsH = clsH < p.kh ? (p.kh - clsH + p.sh - 1) / p.sh : 0;
        tapsW = clsW < p.kw ? (p.kw - clsW + p.sw - 1) / p.sw : 0;
        qh = int((firstH + p.ph - clsH) / p.sh);
        qw = int((firstW + p.pw - clsW) / p.sw);
        ncols = p.nb * rowsH * rowsW;
        Kc = p.cout * tapsH * tapsW;
        Ntot = p.nb * p.h * p.w;
        bh = p.oh; bw = p.ow;
    }
    uint mStrideA, mStrideOut;
    if (MODE == 0) { mStrideA = p.sAm; mStrideOut = p.ldc; }
    else if (MODE == 1) { mStrideA = p.K; mStrideOut = p.oh * p.ow; }
    else if (MODE == 2) { mStrideA = p.kh * p.kw; mStrideOut = p.h * p.w; }
    else { mStrideA = p.oh * p.ow; mStrideOut = p.N; }

    // This part's k range, whole slices long.
    uint kPart = (Kc + S - 1) / S;
    kPart = (kPart + BK - 1) / BK * BK;
    uint kBeg = min(part * kPart, Kc);
    kEnd = min(kBeg + kPart, Kc);
    uint slices = (kEnd - kBeg + BK - 1) / BK;

    // Mode 0 with a transposed operand reads it along m (A) or k (B), the
    // contiguous direction; every other layout walks k (A) and n (B).
    aAlongM = MODE == 0 && !VEC_A && p.sAm == 1 && p.sAk != 1;
    bAlongK = MODE == 0 && !VEC_B && p.sBk == 1 && p.sBn != 1;

    // Per-load geometry that does not change from slice to slice.
    for (uint i = 0; i < EA; ++i) {
        uint e = tid + i * WG;
        uint ml = aAlongM ? e % BM : e / BKU;
        uint m = m0 + ml;
        aRowOk[i] = e < BM * BKU && m < p.M;
        aRowOff[i] = aRowOk[i] ? m * mStrideA : 0;
    }
    for (uint i = 0; i < EB; ++i) {
        uint e = tid + i * WG;
        uint nl = (bAlongK ? e / BK : e % BNU * VB);
        uint n = n0 + nl;
        uint oc, sc;
        bColOk[i] = e < BK * BNU && n < ncols;
        colTerms(bColOk[i] ? n : 0, bBase[i], bH0[i], bW0[i], oc, sc);
    }

    float acc[TM * TN];
    for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;

    if (slices > 0) {
        fetch(kBeg);
        store(0);
        barrier();
    }
    for (uint s = 0; s < slices; ++s) {
        uint cur = s & 1u;
        bool more = s + 1 < slices;
        if (more) fetch(kBeg + (s + 1) * BK);
        uint abase = cur * BK * BMP + ty, bbase = cur * BK * BNP + tx;
        for (uint kk = 0; kk < BK; ++kk) {
            float av[TM], bv[TN];
            for (uint i = 0; i < TM; ++i) av[i] = As[abase + kk * BMP + i * WM];
            for (uint j = 0; j < TN; ++j) bv[j] = Bs[bbase + kk * BNP + j * WN];
            for (uint i = 0; i < TM; ++i)
                for (uint j = 0; j < TN; ++j) acc[i * TN + j] += av[i] * bv[j];
        }
        // The other buffer was last read in slice s-1, before the barrier
        // that ended it: safe to overwrite now.
        if (more) store(cur ^ 1u);
        barrier();
    }

    uint outCol[TN], scol[TN];
    bool colOk[TN];
    for (uint j = 0; j < TN; ++j) {
        uint n = n0 + tx + j * WN;
        colOk[j] = n < ncols;
        int base, h0, w0;
        colTerms(colOk[j] ? n : 0, base, h0, w0, outCol[j], scol[j]);
    }
    for (uint i = 0; i < TM; ++i) {
        uint m = m0 + ty + i * WM;
        if (m >= p.M) break;
        for (uint j = 0; j < TN; ++j) {
            if (!colOk[j]) continue;
            float v = acc[i * TN + j];
            if (S > 1) {
                c32[(part * p.M + m) * Ntot + scol[j]] = v;
                continue;
            }
            uint idx = (m + p.yc0) * mStrideOut + outCol[j];
            v *= p.alpha;
            if (p.beta != 0.0) v += p.beta * c32[idx];
            if (p.hasBias != 0u) v += bias[outCol[j]];
            if ((p.epi & 1u) != 0u) v = v * bias[m] + bias[p.M + m];
            if ((p.epi & 2u) != 0u) v = max(v, 0.0);
            if (EPI_ACT) {
                v = epiActivate(p.epi, v, (p.epi & EPI_GRAD) != 0u ? bias[idx] : 0.0, p.slope);
            }
            c32[idx] = v;
        }
    }
}
