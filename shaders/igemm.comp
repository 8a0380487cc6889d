#version 450
// igemm: one implicit-GEMM core for matmul and every convolution pass.
//
// C[m][n] = alpha * sum_k A[m][k] * B[k][n] + beta * C[m][n] (+ bias[n])
//
// MODE selects the index map from (m, n, k) to memory:
//   0 matmul            A[m*sAm + k*sAk], B[k*sBk + n*sBn], C[m*ldc + n]
//   1 conv forward      m = cout, n = (batch, oh, ow), k = (cin, kh, kw)
//   2 conv backward-data (= transposed conv forward), gathered per output
//     parity class (grid z): m = cin, n = (batch, ih, iw) in the class,
//     k = (cout, kh, kw) restricted to the taps that reach the class
//   3 conv backward-weights  m = cout, n = (cin, kh, kw), k = (batch, oh, ow)
//   4 conv forward on a zero-padded input (KW % 4 == 0, even stride): the
//     four kw taps of a chunk are two aligned 64-bit loads, no bounds checks
//   5 conv backward-weights on a zero-padded input, same conditions: an
//     invocation's four columns are four adjacent kw taps
//   6 mode 2 with A packed by pack_bwd.comp (CPU devices): class z's
//     A[m][k] at (z*cin + m)*sAm + k, k = (co, th, tw) in mode 2's order,
//     rows zero-padded to sAm % 4 == 0, so A takes 64-bit loads (VEC_A)
//
// In modes 0 and 4 A's rows are sAm floats apart, in mode 6 the packed
// rows: the engine spreads them where K is a multiple of 256 floats, whose
// rows would share a few L1 cache sets (engine/gemm.go, spreadRows).
//
// In modes 4 and 5 binding 1 is the input zero-padded by pad.comp to
// [nb, cin, hp, wp] with wp even, so tap (kh, kw) of output (oh, ow) sits at
// row oh*sh + kh, column ow*sw + kw.
//
// Each invocation owns a TM x TN register tile (TM rows of m, TN = 4
// adjacent columns of n). All invocations of a workgroup share the same TM
// rows, so with USE_SG the A tile is loaded once per subgroup, two rows per
// lane, and handed to every lane with subgroupBroadcast: on CPU drivers
// (lavapipe) each buffer load is a per-lane scalar loop, so loads per
// multiply-add, not FLOPs, set the speed. Without USE_SG (GPUs) each
// invocation loads A itself; those same-address loads are broadcast by the
// hardware.
//
// USE_TEX (igemm_tex, CPU devices) also binds A and B as RGBA32F uniform
// texel buffers and takes the aligned 4-float loads of A and B from them:
// llvmpipe fetches a texel for all lanes with one vector load per lane and
// a transpose, where a storage-buffer load is a per-lane scalar loop with a
// bounds branch (1024^3 matmul about 1.25x).
// vkgan:variant i64 -DUSE_I64=1
// vkgan:variant tex -DUSE_I64=1 -DUSE_TEX=1

#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_ballot : enable
#extension GL_EXT_control_flow_attributes : enable
#ifdef USE_TEX
// texelFetch on a textureBuffer without a sampler: OpImageFetch on the
// image itself (a sampled image of a buffer is deprecated SPIR-V).
#extension GL_EXT_samplerless_texture_functions : require
#endif
#ifdef USE_I64
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_ARB_gpu_shader_int64 : require
#endif

#define TN 4

layout(local_size_x_id = 1) in;
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 2) const bool USE_SG = false;
layout(constant_id = 3) const bool VEC_A = false; // A rows contiguous along k, K%4 == 0, 16-byte aligned
layout(constant_id = 4) const bool VEC_B = false; // MODE 0: B rows contiguous along n, N%4 == 0, aligned
// Rows per tile: 16, or 8 / 4 for outputs with few rows (an RGB image, a
// single logit) so lanes are not spent on rows that do not exist; 32 or 64
// with USE_SG (each lane loads four or eight rows), which cuts B's loads per
// multiply-add by 2x or 4x.
layout(constant_id = 5) const uint TM = 16;
// MODE 4 with ow % 4 == 0, stride 2 and wp % 4 == 0: a lane's four columns
// are adjacent pixels of one output row, whose 4-tap windows overlap, so
// the 16 taps of a chunk are 10 floats from one 16-byte aligned offset:
// three loads instead of eight. MODE 5 under the same conditions: the
// chunk's four k are such pixels and the columns their taps. MODE 6 with
// kernel 4, stride 2, padding 1 and W % 8 == 0: B is dy zero-padded by
// one (hp x wp planes) and a lane's four columns read five adjacent floats
// per tap row, two aligned loads instead of eight bounds-checked gathers.
layout(constant_id = 6) const bool QUAD_B = false;
// MODE 0 with B transposed (sBk == 1, sBn % 4 == 0, K % 4 == 0): a
// column's four k of a chunk are one aligned 4-float load.
layout(constant_id = 7) const bool VEC_BT = false;
// MODE 0 with A transposed (sAm == 1, sAk % 4 == 0, M % 4 == 0), USE_SG
// and TM == 32: a lane's four rows of A are adjacent floats at each k, so
// each k is one aligned 4-float load, transposed in registers, where the
// scalar path took sixteen per-lane loads a chunk.
layout(constant_id = 8) const bool VEC_AT = false;
// The epilogue's activation field (MODE 0): its code, four copies of
// exp-based activations in the vector epilogue, costs the matmul pipelines
// a third more compile time, so only the GEMMs that use it compile it.
layout(constant_id = 9) const bool EPI_ACT = false;
// MODE 0 with USE_SG: also write op(A)'s row sums (the M sums over k)
// into binding 3: a linear layer's bias gradient (dy's column sums) from
// its weight-gradient GEMM dy^T x, which loads every value of dy already,
// instead of a dispatch of its own. Workgroup column 0 writes them.
layout(constant_id = 10) const bool SUM_A = false;

layout(std430, binding = 0) readonly buffer A32 { float a32[]; };
layout(std430, binding = 1) readonly buffer B32 { float b32[]; };
layout(std430, binding = 2) buffer C32 { float c32[]; };
layout(std430, binding = 2) buffer C4 { vec4 c4[]; }; // MODE 0's aligned rows
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) readonly buffer Bias4 { vec4 bias4[]; }; // MODE 0's saved activations
layout(std430, binding = 3) writeonly buffer RowSum { float rowSum[]; }; // SUM_A's output
#ifdef USE_I64
// 64-bit views of A and B: one lane-load fetches two floats.
layout(std430, binding = 0) readonly buffer A64 { u64vec2 a64[]; };
layout(std430, binding = 1) readonly buffer B64 { u64vec2 b64[]; };
layout(std430, binding = 1) readonly buffer B64s { uint64_t b64s[]; };
#endif
#ifdef USE_TEX
layout(binding = 4) uniform textureBuffer texA; // A as texels of 4 floats
layout(binding = 5) uniform textureBuffer texB; // B as texels of 4 floats
#endif

layout(push_constant) uniform P {
    uint M, N, K;
    uint sAm, sAk, sBk, sBn, ldc;        // MODE 0
    uint nb, cin, h, w, cout, oh, ow;    // conv shapes: x [nb,cin,h,w], y [nb,cout,oh,ow]
    uint kh, kw, sh, sw, ph, pw;         // kernel, stride, padding
    float alpha, beta;
    uint hasBias;
    uint hp, wp;                         // modes 4, 5: padded input height and (even) width
    // Modes 1, 4 (conv forward) write channels yc0 .. yc0+cout-1 of an
    // output with yc channels (a branch of a channel concatenation);
    // other modes have yc = cout, yc0 = 0.
    uint yc, yc0;
    // Epilogue bits: 1 = per-row affine v*bias[m] + bias[M+m] (a folded
    // batch norm), 2 = ReLU; applied after alpha, beta and hasBias. MODE 0
    // with EPI_ACT also takes act.glsl's activation field (bits 2-5) and
    // its slope.
    uint epi;
    float slope;
} p;

#include "act.glsl"

vec4 load4A(uint idx) { // idx % 4 == 0
#if defined(USE_TEX)
    return texelFetch(texA, int(idx >> 2));
#elif defined(USE_I64)
    u64vec2 v = a64[idx >> 2];
    return vec4(uintBitsToFloat(unpackUint2x32(v.x)), uintBitsToFloat(unpackUint2x32(v.y)));
#else
    return vec4(a32[idx], a32[idx + 1], a32[idx + 2], a32[idx + 3]);
#endif
}

vec4 load4B(uint idx) { // idx % 4 == 0
#if defined(USE_TEX)
    return texelFetch(texB, int(idx >> 2));
#elif defined(USE_I64)
    u64vec2 v = b64[idx >> 2];
    return vec4(uintBitsToFloat(unpackUint2x32(v.x)), uintBitsToFloat(unpackUint2x32(v.y)));
#else
    return vec4(b32[idx], b32[idx + 1], b32[idx + 2], b32[idx + 3]);
#endif
}

vec4 load4Bpair(uint idx) { // idx % 2 == 0: four floats as two 64-bit words
#ifdef USE_I64
    uint i = idx >> 1;
    return vec4(uintBitsToFloat(unpackUint2x32(b64s[i])), uintBitsToFloat(unpackUint2x32(b64s[i + 1])));
#else
    return vec4(b32[idx], b32[idx + 1], b32[idx + 2], b32[idx + 3]);
#endif
}

vec2 load2B(uint idx) { // idx % 2 == 0
#ifdef USE_I64
    return uintBitsToFloat(unpackUint2x32(b64s[idx >> 1]));
#else
    return vec2(b32[idx], b32[idx + 1]);
#endif
}

// load10B loads B's ten floats from idx (idx % 4 == 0) in three loads: a
// chunk's window in QUAD_B.
void load10B(uint idx, out vec4 f0, out vec4 f1, out vec2 f2) {
    f0 = load4B(idx);
    f1 = load4B(idx + 4);
#ifdef USE_TEX
    f2 = load4B(idx + 8).xy; // in bounds: the buffer is whole texels
#else
    f2 = load2B(idx + 8);
#endif
}

// Per-k terms of the index maps for the four k of the current chunk.
int kA[4];     // A offset contributed by k
int kB[4];     // B offset contributed by k
int kdh[4];    // conv modes: row shift for the bounds check
int kdw[4];    // conv modes: column shift
bool kok[4];   // k < K

// k decomposition counters (uniform across the workgroup).
uint c0, c1, c2; // MODE 1: (ci, kh, kw); MODE 2: (co, th, tw); MODE 3: (batch, oh, ow)

// Column and row geometry main sets up once for chunk() (B's column
// offsets and bounds, QUAD_B's base, A's rows and row stride).
int colBase[TN], h0[TN], w0[TN];
int quadBase;
uint bh, bw;
uint myRow[8];
uint mStrideA;
// VEC_AT: the offset of the lane's four rows, clamped to the last whole
// four (rows past M are loaded but never stored).
uint aRowsT;
// With USE_SG, lane l < 8 loads rows RPL*l .. RPL*l+RPL-1 of the tile:
// eight rows of a 64-row tile, four of a 32-row one, two of a 16-row
// one, row l of a smaller one.
const uint RPL = TM >= 16 ? TM / 8 : 1;

// Class geometry for MODES 2 and 6; aCls is MODE 6's class offset into A.
uint clsH, clsW, tapsH, tapsW, firstH, firstW, aCls;
int qh, qw;

void advance() {
    if (MODE == 1) {
        if (++c2 == p.kw) { c2 = 0; if (++c1 == p.kh) { c1 = 0; ++c0; } }
    } else if (MODE == 2 || MODE == 6) {
        if (++c2 == tapsW) { c2 = 0; if (++c1 == tapsH) { c1 = 0; ++c0; } }
    } else if (MODE == 3 || MODE == 5) {
        if (++c2 == p.ow) { c2 = 0; if (++c1 == p.oh) { c1 = 0; ++c0; } }
    } else if (MODE == 4) {
        // One chunk is four kw taps: step kw by 4 once per chunk (kk == 3).
    }
}

void describeK(uint kk, uint k) {
    kok[kk] = k < p.K;
    if (MODE == 0) {
        kA[kk] = int(k * p.sAk);
        kB[kk] = int(k * p.sBk);
    } else if (MODE == 1) {
        kA[kk] = int(k);
        kB[kk] = int((c0 * p.h + c1) * p.w + c2);
        kdh[kk] = int(c1);
        kdw[kk] = int(c2);
    } else if (MODE == 2) {
        uint khh = clsH + p.sh * c1, kww = clsW + p.sw * c2;
        kA[kk] = int((c0 * p.cin * p.kh + khh) * p.kw + kww);
        kB[kk] = int(c0 * p.oh * p.ow) - int(c1 * p.ow) - int(c2);
        kdh[kk] = -int(c1);
        kdw[kk] = -int(c2);
    } else if (MODE == 6) {
        kA[kk] = int(aCls + k);
        kB[kk] = int(c0 * p.oh * p.ow) - int(c1 * p.ow) - int(c2);
        kdh[kk] = -int(c1);
        kdw[kk] = -int(c2);
    } else if (MODE == 4) {
        kA[kk] = int(k);
        kB[kk] = int((c0 * p.hp + c1) * p.wp + c2);
        if (kk == 3) { c2 += 4; if (c2 == p.kw) { c2 = 0; if (++c1 == p.kh) { c1 = 0; ++c0; } } }
        return;
    } else if (MODE == 5) {
        kA[kk] = int((c0 * p.cout) * p.oh * p.ow + c1 * p.ow + c2);
        kB[kk] = int(((c0 * p.cin) * p.hp + c1 * p.sh) * p.wp + c2 * p.sw);
    } else {
        int hoff = int(c1 * p.sh) - int(p.ph), woff = int(c2 * p.sw) - int(p.pw);
        kA[kk] = int((c0 * p.cout) * p.oh * p.ow + c1 * p.ow + c2);
        kB[kk] = int(c0 * p.cin * p.h * p.w) + hoff * int(p.w) + woff;
        kdh[kk] = hoff;
        kdw[kk] = woff;
    }
    advance();
}

// chunk describes k0 .. k0+3 and loads their B (b[kk] holds
// B[k0+kk][col0 .. col0+3]) and, with USE_SG, this lane's A rows (la[i]
// holds A[myRow[i]][k0 .. k0+3]). In a partial last chunk the B values
// past Kc are zero.
void chunk(uint k0, uint Kc, out vec4 b[4], out vec4 la[8]) {
    uint co = c0; // MODE 6 with QUAD_B: the chunk's output channel
    for (uint kk = 0; kk < 4; ++kk) describeK(kk, k0 + kk);
    if (MODE == 2 || MODE == 6) for (uint kk = 0; kk < 4; ++kk) kok[kk] = k0 + kk < Kc;

    // B.
    if (MODE == 4 && QUAD_B) {
        // Column j's tap kk is float 2j+kk of the ten from quadBase.
        uint i = uint(quadBase + kB[0]);
        vec4 f0, f1;
        vec2 f2;
        load10B(i, f0, f1, f2);
        b[0] = vec4(f0.x, f0.z, f1.x, f1.z);
        b[1] = vec4(f0.y, f0.w, f1.y, f1.w);
        b[2] = vec4(f0.z, f1.x, f1.z, f2.x);
        b[3] = vec4(f0.w, f1.y, f1.w, f2.y);
    } else if (MODE == 4) {
        // Column j's four taps are B[k0..k0+3][j].
        vec4 t[TN];
        for (uint j = 0; j < TN; ++j) t[j] = load4Bpair(uint(colBase[j] + kB[0]));
        for (uint kk = 0; kk < 4; ++kk) b[kk] = vec4(t[0][kk], t[1][kk], t[2][kk], t[3][kk]);
    } else if (MODE == 6 && QUAD_B) {
        // The chunk is one output channel's taps (th, tw) in (0,0), (0,1),
        // (1,0), (1,1); column j's tap is padded dy row th up from the
        // quad's, float qw + 1 - tw + j from its aligned offset.
        uint i = uint(quadBase) + co * p.hp * p.wp;
        vec4 t0 = load4B(i), t1 = load4B(i + 4);
        vec4 u0 = load4B(i - p.wp), u1 = load4B(i - p.wp + 4);
        bool s = qw != 0;
        b[0] = s ? vec4(t0.z, t0.w, t1.x, t1.y) : vec4(t0.y, t0.z, t0.w, t1.x);
        b[1] = s ? vec4(t0.y, t0.z, t0.w, t1.x) : t0;
        b[2] = s ? vec4(u0.z, u0.w, u1.x, u1.y) : vec4(u0.y, u0.z, u0.w, u1.x);
        b[3] = s ? vec4(u0.y, u0.z, u0.w, u1.x) : u0;
    } else if (MODE == 5 && QUAD_B) {
        // The chunk's four k are adjacent pixels of one output row, whose
        // windows of the four taps (the columns) are floats 2kk .. 2kk+3
        // of the ten from an aligned offset: three loads instead of eight.
        uint i = uint(colBase[0] + kB[0]);
        vec4 f0, f1;
        vec2 f2;
        load10B(i, f0, f1, f2);
        b[0] = f0;
        b[1] = vec4(f0.z, f0.w, f1.x, f1.y);
        b[2] = f1;
        b[3] = vec4(f1.z, f1.w, f2.x, f2.y);
    } else if (MODE == 5) {
        // The four columns are adjacent taps of one padded row.
        for (uint kk = 0; kk < 4; ++kk) {
            bool ok = kok[kk];
            b[kk] = ok ? load4Bpair(ok ? uint(colBase[0] + kB[kk]) : 0) : vec4(0);
        }
    } else if (MODE == 0 && VEC_B) {
        for (uint kk = 0; kk < 4; ++kk) {
            uint idx = uint(kB[kk] + colBase[0]);
            b[kk] = kok[kk] ? load4B(kok[kk] ? idx : 0) : vec4(0);
        }
    } else if (MODE == 0 && VEC_BT) {
        // Column j's four k, transposed into b (whole chunks: K % 4 == 0).
        vec4 t[TN];
        for (uint j = 0; j < TN; ++j) t[j] = load4B(uint(colBase[j] + kB[0]));
        for (uint kk = 0; kk < 4; ++kk) b[kk] = vec4(t[0][kk], t[1][kk], t[2][kk], t[3][kk]);
    } else {
        for (uint kk = 0; kk < 4; ++kk) {
            for (uint j = 0; j < TN; ++j) {
                bool ok = kok[kk];
                if (MODE != 0) {
                    ok = ok && uint(h0[j] + kdh[kk]) < bh && uint(w0[j] + kdw[kk]) < bw;
                }
                float v = b32[ok ? uint(colBase[j] + kB[kk]) : 0];
                b[kk][j] = ok ? v : 0.0;
            }
        }
    }

    // A.
    if (USE_SG && VEC_AT) {
        vec4 t[4];
        for (uint kk = 0; kk < 4; ++kk) {
            bool ok = kok[kk];
            t[kk] = ok ? load4A(ok ? aRowsT + uint(kA[kk]) : 0) : vec4(0);
        }
        for (uint i = 0; i < 4; ++i) la[i] = vec4(t[0][i], t[1][i], t[2][i], t[3][i]);
    } else if (USE_SG) {
        for (uint i = 0; i < RPL; ++i) {
            if (VEC_A) {
                bool ok = kok[0];
                la[i] = load4A(ok ? myRow[i] * mStrideA + uint(kA[0]) : 0);
            } else {
                for (uint kk = 0; kk < 4; ++kk) {
                    bool ok = kok[kk];
                    la[i][kk] = ok ? a32[ok ? myRow[i] * mStrideA + uint(kA[kk]) : 0] : 0.0;
                }
            }
        }
    }
}

void main() {
    const uint lane = gl_SubgroupInvocationID;
    uint m0 = gl_WorkGroupID.y * TM;
    uint col0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TN;

    // Column geometry. Columns past the end are clamped to a valid one so
    // every load stays in bounds; their results are never stored.
    uint ncols = p.N;
    bh = 0; bw = 0; // bounds for the B gather (conv modes)
    if (MODE == 2 || MODE == 6) {
        uint cls = gl_WorkGroupID.z;
        aCls = cls * p.cin * p.sAm;
        clsH = cls / p.sw;
        clsW = cls % p.sw;
        firstH = (clsH + p.sh * p.ph - p.ph) % p.sh;
        firstW = (clsW + p.sw * p.pw - p.pw) % p.sw;
        uint rowsH = firstH < p.h ? (p.h - firstH + p.sh - 1) / p.sh : 0;
        uint rowsW = firstW < p.w ? (p.w - firstW + p.sw - 1) / p.sw : 0;
        tapsH = clsH < p.kh ? (p.kh - clsH + p.sh - 1) / p.sh : 0;
        tapsW = clsW < p.kw ? (p.kw - clsW + p.sw - 1) / p.sw : 0;
        qh = int((firstH + p.ph - clsH) / p.sh);
        qw = int((firstW + p.pw - clsW) / p.sw);
        ncols = p.nb * rowsH * rowsW;
        bh = p.oh; bw = p.ow;
        // Precompute the decomposition of n for this class below.
        clsH = clsH; // kept for describeK
    } else if (MODE == 1 || MODE == 3) {
        bh = p.h; bw = p.w;
    }
    uint Kc = p.K;
    if (MODE == 2 || MODE == 6) Kc = p.cout * tapsH * tapsW;

    uint outCol[TN];
    bool colOk[TN];
    for (uint j = 0; j < TN; ++j) {
        uint n = col0 + j;
        colOk[j] = n < ncols;
        n = min(n, max(ncols, 1) - 1);
        if (MODE == 0) {
            colBase[j] = int(n * p.sBn);
            outCol[j] = n;
        } else if (MODE == 1) {
            uint ohw = p.oh * p.ow;
            uint b = n / ohw, pix = n % ohw;
            uint y = pix / p.ow, x = pix % p.ow;
            h0[j] = int(y * p.sh) - int(p.ph);
            w0[j] = int(x * p.sw) - int(p.pw);
            colBase[j] = int(b * p.cin * p.h * p.w) + h0[j] * int(p.w) + w0[j];
            outCol[j] = b * p.yc * ohw + pix;
        } else if (MODE == 2 || MODE == 6) {
            uint rowsH = firstH < p.h ? (p.h - firstH + p.sh - 1) / p.sh : 0;
            uint rowsW = firstW < p.w ? (p.w - firstW + p.sw - 1) / p.sw : 0;
            uint per = max(rowsH * rowsW, 1);
            uint b = n / per, r = n % per;
            uint jr = r / max(rowsW, 1), ic = r % max(rowsW, 1);
            h0[j] = int(jr) + qh;
            w0[j] = int(ic) + qw;
            colBase[j] = int(b * p.cout * p.oh * p.ow) + h0[j] * int(p.ow) + w0[j];
            uint ih = firstH + p.sh * jr, iw = firstW + p.sw * ic;
            outCol[j] = (b * p.cin * p.h + ih) * p.w + iw;
        } else if (MODE == 4) {
            uint ohw = p.oh * p.ow;
            uint b = n / ohw, pix = n % ohw;
            uint y = pix / p.ow, x = pix % p.ow;
            colBase[j] = int(((b * p.cin) * p.hp + y * p.sh) * p.wp + x * p.sw);
            outCol[j] = b * p.yc * ohw + pix;
        } else if (MODE == 5) {
            // All four columns share column 0's base; keep it 4-aligned.
            uint khw = p.kh * p.kw;
            uint n4 = min(col0, p.N - 4);
            uint ci = n4 / khw, r = n4 % khw;
            colBase[j] = int((ci * p.hp + r / p.kw) * p.wp + r % p.kw);
            outCol[j] = n;
        } else {
            uint khw = p.kh * p.kw;
            uint ci = n / khw, r = n % khw;
            uint y = r / p.kw, x = r % p.kw;
            h0[j] = int(y);
            w0[j] = int(x);
            colBase[j] = int((ci * p.h + y) * p.w + x);
            outCol[j] = n;
        }
    }

    // QUAD_B: the first pixel of the lane's quad, clamped to the last
    // whole quad (N % 4 == 0) so every load stays inside its padded row.
    quadBase = 0;
    if (MODE == 6 && QUAD_B) {
        // Padded dy index of the quad's first pixel at tap row 0, less qw.
        uint rowsH = (p.h - firstH + 1) / 2, rowsW = (p.w - firstW + 1) / 2;
        uint n = min(col0, max(ncols, 4) - 4);
        uint per = rowsH * rowsW;
        uint b = n / per, r = n % per;
        quadBase = int(((b * p.cout) * p.hp + r / rowsW + uint(qh) + 1u) * p.wp + r % rowsW);
    }
    if (MODE == 4 && QUAD_B) {
        uint n = min(col0, max(ncols, 4) - 4);
        uint ohw = p.oh * p.ow;
        uint b = n / ohw, pix = n % ohw;
        quadBase = int(((b * p.cin) * p.hp + (pix / p.ow) * p.sh) * p.wp + (pix % p.ow) * p.sw);
    }

    // Row geometry: A's row offset and the output's row stride.
    uint mStrideOut;
    if (MODE == 0) { mStrideA = p.sAm; mStrideOut = p.ldc; }
    else if (MODE == 1) { mStrideA = p.K; mStrideOut = p.oh * p.ow; }
    else if (MODE == 4) { mStrideA = p.sAm; mStrideOut = p.oh * p.ow; } // sAm >= K: see spreadRows
    else if (MODE == 2) { mStrideA = p.kh * p.kw; mStrideOut = p.h * p.w; }
    else if (MODE == 6) { mStrideA = p.sAm; mStrideOut = p.h * p.w; }
    else { mStrideA = p.oh * p.ow; mStrideOut = p.N; } // modes 3, 5

    for (uint i = 0; i < 8; ++i) myRow[i] = min(m0 + RPL * (lane & 7u) + i, p.M - 1);
    aRowsT = min(m0 + 4u * (lane & 7u), p.M - 4u);

    vec4 acc[64]; // TM's largest value; rows past TM are never touched
    for (uint r = 0; r < TM; ++r) acc[r] = vec4(0);

#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define ROWS16(X) ROWS8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define ROWS32(X) ROWS16(X) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31)
#define ROWS64(X) ROWS32(X) X(32) X(33) X(34) X(35) X(36) X(37) X(38) X(39) X(40) X(41) X(42) X(43) X(44) X(45) X(46) X(47) X(48) X(49) X(50) X(51) X(52) X(53) X(54) X(55) X(56) X(57) X(58) X(59) X(60) X(61) X(62) X(63)
// A row's products with one chunk's B rows bb.
#define DOT4(av, bb) ((av).x * bb[0] + (av).y * bb[1] + (av).z * bb[2] + (av).w * bb[3])
// Row r's A values come from the lane that loaded them (literal lane
// numbers: one macro per rows-per-lane).
#define A_SG8(l, r) subgroupBroadcast(l[(r) & 7], (r) >> 3)
#define A_SG4(l, r) subgroupBroadcast(l[(r) & 3], (r) >> 2)
#define A_SG2(l, r) subgroupBroadcast(l[(r) & 1], (r) >> 1)
#define A_SG1(l, r) subgroupBroadcast(l[0], (r))
#define ROW_SG8(r) acc[r] += DOT4(A_SG8(la, r), b);
#define ROW_SG4(r) acc[r] += DOT4(A_SG4(la, r), b);
#define ROW_SG2(r) acc[r] += DOT4(A_SG2(la, r), b);
#define ROW_SG1(r) if ((r) < TM) acc[r] += DOT4(A_SG1(la, r), b);
// One chunk's update of the whole tile, with USE_SG.
#define ROWS_SG if (TM == 64) { ROWS64(ROW_SG8) } else if (TM == 32) { ROWS32(ROW_SG4) } else if (TM == 16) { ROWS16(ROW_SG2) } else { ROWS8(ROW_SG1) }

    c0 = 0; c1 = 0; c2 = 0;
    float aSum[8]; // SUM_A: the sums of this lane's rows of A (la)
    for (uint i = 0; i < 8; ++i) aSum[i] = 0.0;
#define SUM_ROWS if (SUM_A) for (uint i = 0; i < RPL; ++i) aSum[i] += (la[i].x + la[i].y) + (la[i].z + la[i].w);
    // A matmul with whole chunks (K % 4 == 0) and both operands' four k
    // in aligned loads keeps the load indices as running offsets: the
    // general loop's per-k index maps and bounds selects cost the 1024^3
    // matmul 7-13% on lavapipe. The sums are the same, in the same order.
    // (Measured no gain for VEC_BT or the conv modes' QUAD_B loads.)
    if (MODE == 0 && USE_SG && VEC_B && (VEC_A || VEC_AT && (p.K & 3u) == 0u)) {
        // VEC_AT (A^T, a linear layer's weight gradient): a lane's four
        // rows at k are one load, transposed into la.
        uint aIdx[8];
        for (uint i = 0; i < RPL; ++i) aIdx[i] = VEC_AT ? aRowsT : myRow[i] * mStrideA;
        uint bIdx = uint(colBase[0]);
        for (uint k0 = 0; k0 < Kc; k0 += 4) {
            vec4 b[4], la[8];
            for (uint kk = 0; kk < 4; ++kk) b[kk] = load4B(bIdx + kk * p.sBk);
            bIdx += 4u * p.sBk;
            if (VEC_AT) {
                vec4 t[4];
                for (uint kk = 0; kk < 4; ++kk) t[kk] = load4A(aIdx[0] + kk * p.sAk);
                aIdx[0] += 4u * p.sAk;
                for (uint i = 0; i < 4; ++i) la[i] = vec4(t[0][i], t[1][i], t[2][i], t[3][i]);
            } else {
                for (uint i = 0; i < RPL; ++i) la[i] = load4A(aIdx[i] + k0);
            }
            SUM_ROWS
            ROWS_SG
        }
    } else
    for (uint k0 = 0; k0 < Kc; k0 += 4) {
        vec4 b[4], la[8];
        chunk(k0, Kc, b, la);
        SUM_ROWS
        if (USE_SG) { ROWS_SG }
        else {
            for (uint r = 0; r < TM; ++r) {
                uint row = min(m0 + r, p.M - 1);
                vec4 av;
                if (VEC_A) {
                    av = kok[0] ? load4A(row * mStrideA + uint(kA[0])) : vec4(0);
                } else {
                    for (uint kk = 0; kk < 4; ++kk) {
                        bool ok = kok[kk];
                        av[kk] = ok ? a32[ok ? row * mStrideA + uint(kA[kk]) : 0] : 0.0;
                    }
                }
                acc[r] += DOT4(av, b);
            }
        }
    }

    if (SUM_A && gl_WorkGroupID.x == 0u && gl_LocalInvocationID.x < 8u) {
        // Lanes 0-7 of the first subgroup hold the tile's rows (VEC_AT's
        // rows are the same ones: M % 4 == 0, so none is clamped).
        for (uint i = 0; i < RPL; ++i) {
            uint rt = RPL * lane + i;
            if (rt < TM && m0 + rt < p.M) rowSum[m0 + rt] = aSum[i];
        }
    }
    if (MODE == 0 && (p.ldc & 3u) == 0u) {
        // A matmul's epilogue with ldc % 4 == 0 loads the column bias once
        // and stores a lane's four columns (unless one is clamped) as one
        // aligned vec4: on llvmpipe every scalar load and store is a
        // per-lane loop, which made the GEMMs with K <= 2 (the toy's first
        // and last layers, D's logit's backward) cost as much as K = 128.
        // The loop is not unrolled: 64 unrolled copies took LLVM ten times
        // as long to compile. The conv modes and narrow outputs (D's logit,
        // ldc 1) measured no gain from it and keep the general epilogue.
        vec4 colBias = vec4(0);
        if (p.hasBias != 0u) for (uint j = 0; j < TN; ++j) colBias[j] = bias[outCol[j]];
        bool vecC = colOk[TN - 1];
        [[dont_unroll]] for (uint r = 0; r < TM; ++r) {
            uint m = m0 + r;
            if (m >= p.M) break;
            uint row = m * p.ldc;
            vec4 v = p.alpha * acc[r];
            if (vecC) {
                if (p.beta != 0.0) v += p.beta * c4[(row + outCol[0]) >> 2];
            } else if (p.beta != 0.0) {
                for (uint j = 0; j < TN; ++j) v[j] += p.beta * c32[row + outCol[j]];
            }
            if (p.hasBias != 0u) v += colBias;
            if ((p.epi & 1u) != 0u) v = v * bias[m] + bias[p.M + m];
            if ((p.epi & 2u) != 0u) v = max(v, vec4(0));
            if (EPI_ACT) {
                vec4 s = vec4(0);
                if ((p.epi & EPI_GRAD) != 0u) {
                    if (vecC) s = bias4[(row + outCol[0]) >> 2];
                    else for (uint j = 0; j < TN; ++j) s[j] = bias[row + outCol[j]];
                }
                for (uint j = 0; j < TN; ++j) v[j] = epiActivate(p.epi, v[j], s[j], p.slope);
            }
            if (vecC) {
                c4[(row + outCol[0]) >> 2] = v;
            } else {
                for (uint j = 0; j < TN; ++j) if (colOk[j]) c32[row + outCol[j]] = v[j];
            }
        }
        return;
    }
    for (uint r = 0; r < TM; ++r) {
        uint m = m0 + r;
        if (m >= p.M) break;
        for (uint j = 0; j < TN; ++j) {
            if (!colOk[j]) continue;
            uint idx = (m + p.yc0) * mStrideOut + outCol[j];
            float v = p.alpha * acc[r][j];
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
