#version 450
// convwin: convolution forward with igemm's fused epilogue (folded batch
// norm, ReLU, output into a channel slice), for kernels that are wider or
// taller than one tap but whose width is not a multiple of four (the
// Inception's 3x3, 5x5, 1x7, 7x1, 1x3 and 3x1).
//
// Rows m are output channels. Each invocation owns TM rows x TN output
// pixels that lie on one line of the output: a row (the kernel's taps run
// along x) or, with VERT, a column (KW == 1, taps run along y). A k chunk
// is one input channel ci and one kernel line (kh, or with VERT the single
// kw), i.e. KT taps. For it an invocation loads the window of
// (TN-1)*ST + KT input values that its TN pixels' taps cover, once, and
// uses each value for every tap that reaches it, where igemm's MODE 1
// loads every (pixel, tap) value separately. On CPU drivers (lavapipe),
// where each buffer load is a per-lane loop of about ten instructions,
// loads per multiply-add set the speed.
//
// Taps outside the image read a clamped in-buffer index and are zeroed by
// a select, so the input needs no padded copy and no load is out of bounds.
// With USE_SG (CPU drivers) each lane loads TM/8 weight rows and
// subgroupBroadcast hands them to the others, as in igemm. Loads are
// 32-bit: a variant that read its windows as 64-bit words (from the even
// index at or below the window, picking floats by the start's parity)
// measured slower on lavapipe than these plain loads.

#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_ballot : enable
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x_id = 1) in;
layout(constant_id = 0) const bool VERT = false; // pixels and taps run along y (KW == 1)
layout(constant_id = 2) const bool USE_SG = false;
layout(constant_id = 3) const uint TM = 16;      // rows per tile: 4, 8 or 16
layout(constant_id = 4) const uint TN = 4;       // pixels per invocation: 4 or 8
layout(constant_id = 5) const uint KT = 3;       // taps per line: KW (rows) or KH (VERT), 1 to 8
layout(constant_id = 6) const uint ST = 1;       // stride along the line: SW or SH, 1 or 2

layout(std430, binding = 0) readonly buffer W { float wt[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform P {
    uint M;                     // output channels (rows)
    uint cin, h, w, oh, ow;     // x [nb, cin, h, w], y [nb, yc, oh, ow]
    uint kh, sh, sw, ph, pw;    // kernel height, strides, padding (kernel width: KT, or 1 with VERT)
    uint groups;                // invocations' worth of pixels in all
    uint gper;                  // pixel groups per output line (TN pixels each)
    uint xLen, wLen;            // x and w lengths in floats
    uint yc, yc0;               // y has yc channels; this conv writes yc0 .. yc0+M-1
    uint epi;                   // 1: per-row affine v*bias[m] + bias[M+m]; 2: ReLU
} p;

const uint TQ = TN / 4;               // vec4s per tile row
const uint LB = (TN - 1) * ST + KT;   // window length
#define LBMAX 22                      // (8-1)*2 + 8
#define RPLMAX 2                      // weight rows per lane at TM 16

float loadX(int i) { return x[uint(clamp(i, 0, int(p.xLen) - 1))]; }
float loadW(int i) { return wt[uint(clamp(i, 0, int(p.wLen) - 1))]; }

void main() {
    const uint lane = gl_SubgroupInvocationID & 7u;
    const uint m0 = gl_WorkGroupID.y * TM;
    const uint hw = p.h * p.w;
    uint g = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    bool gOk = g < p.groups;
    g = min(g, p.groups - 1);

    // Pixel geometry. Rows: g = ((b*oh + oy)*gper + group), pixels (oy,
    // ox0 + j). VERT: g = ((b*gper + group)*ow + ox), pixels (oy0 + j, ox),
    // so adjacent lanes read adjacent columns. s0 is the input index of
    // window value 0 for ci = 0 and kernel line 0; e0 its position along
    // the line (for the bounds check) and lim the line's length.
    uint b, pix0, pixStep, nOk;
    int s0, e0, f0;   // f0: the across-line position of kernel line 0 (row or column)
    uint lim, flim;   // line length and across-line length of the input
    int eStride, fStride; // index steps along and across the line
    if (VERT) {
        uint perImage = p.gper * p.ow;
        b = g / perImage;
        uint r = g % perImage;
        uint oy0 = (r / p.ow) * TN, ox = r % p.ow;
        pix0 = oy0 * p.ow + ox;
        pixStep = p.ow;
        nOk = gOk ? min(p.oh - oy0, TN) : 0;
        e0 = int(oy0 * p.sh) - int(p.ph);
        f0 = int(ox * p.sw) - int(p.pw);
        lim = p.h; flim = p.w;
        eStride = int(p.w); fStride = 1;
    } else {
        uint perImage = p.oh * p.gper;
        b = g / perImage;
        uint r = g % perImage;
        uint oy = r / p.gper, ox0 = (r % p.gper) * TN;
        pix0 = oy * p.ow + ox0;
        pixStep = 1;
        nOk = gOk ? min(p.ow - ox0, TN) : 0;
        e0 = int(ox0 * p.sw) - int(p.pw);
        f0 = int(oy * p.sh) - int(p.ph);
        lim = p.w; flim = p.h;
        eStride = 1; fStride = int(p.w);
    }
    s0 = int(b * p.cin * hw) + e0 * eStride + f0 * fStride;

    // Lines per input channel (kh for rows; 1 for VERT) and the weight row
    // length: weights are [M][cin][kh][kw].
    uint lines = VERT ? 1 : p.kh;
    uint K = p.cin * lines;
    uint strideA = K * KT;

    vec4 acc[TM * TQ];
    for (uint i = 0; i < TM * TQ; ++i) acc[i] = vec4(0);

    uint ci = 0, kl = 0; // the chunk's input channel and kernel line, uniform
    for (uint k = 0; k < K; ++k) {
        // B: the window, zeroed outside the image; bv[t][q] holds tap t
        // for pixels 4q .. 4q+3.
        float v[LBMAX];
        int s = s0 + int(ci * hw) + int(kl) * fStride;
        bool lineOk = uint(f0 + int(kl)) < flim;
        for (uint e = 0; e < LB; ++e) {
            float t = loadX(s + int(e) * eStride);
            v[e] = lineOk && uint(e0 + int(e)) < lim ? t : 0.0;
        }
        vec4 bv[8][2];
        for (uint t = 0; t < KT; ++t)
            for (uint q = 0; q < TQ; ++q)
                bv[t][q] = vec4(v[(4 * q) * ST + t], v[(4 * q + 1) * ST + t], v[(4 * q + 2) * ST + t], v[(4 * q + 3) * ST + t]);
        if (++kl == lines) { kl = 0; ++ci; }

        // A: the chunk's KT taps of each weight row.
        uint aOff = k * KT;
        if (USE_SG) {
            // Lane l loads rows l*RPL .. l*RPL+RPL-1 of the tile (rows past
            // M repeat the last one); row r comes from lane r / RPL.
            const uint RPL = TM >= 8 ? TM / 8 : 1;
            float a[RPLMAX][8];
            for (uint i = 0; i < RPL; ++i) {
                uint row = min(m0 + lane * RPL + i, p.M - 1);
                for (uint t = 0; t < KT; ++t) a[i][t] = loadW(int(row * strideA + aOff + t));
            }
            // Row by row, each row's products summed before one update of
            // its accumulators: lavapipe spills them and blends every
            // loop-carried write with the execution mask.
#define ROW(r, L) if ((r) < TM) { \
                for (uint q = 0; q < TQ; ++q) { \
                    vec4 s = vec4(0); \
                    for (uint t = 0; t < KT; ++t) \
                        s += subgroupBroadcast(a[(r) % (L)][t], (r) / (L)) * bv[t][q]; \
                    acc[(r) * TQ + q] += s; \
                } }
#define ROW4(r, L) ROW(r, L) ROW(r + 1, L) ROW(r + 2, L) ROW(r + 3, L)
#define ROW16(r, L) ROW4(r, L) ROW4(r + 4, L) ROW4(r + 8, L) ROW4(r + 12, L)
            // The broadcast's lane must be a compile-time constant: one
            // expansion per rows-per-lane.
            if (TM == 16) {
                ROW16(0, 2)
            } else {
                ROW4(0, 1) ROW4(4, 1)
            }
        } else {
            for (uint r = 0; r < TM; ++r) {
                uint row = min(m0 + r, p.M - 1);
                float a[8];
                for (uint t = 0; t < KT; ++t) a[t] = loadW(int(row * strideA + aOff + t));
                for (uint q = 0; q < TQ; ++q) {
                    vec4 s = vec4(0);
                    for (uint t = 0; t < KT; ++t) s += a[t] * bv[t][q];
                    acc[r * TQ + q] += s;
                }
            }
        }
    }

    // Not unrolled: unrolled, the per-lane stores are most of the shader
    // and multiply lavapipe's compile time several times over.
    [[dont_unroll]] for (uint r = 0; r < TM; ++r) {
        uint m = m0 + r;
        if (m >= p.M) break;
        uint base = (b * p.yc + p.yc0 + m) * p.oh * p.ow + pix0;
        for (uint j = 0; j < TN; ++j) {
            if (j >= nOk) break;
            float v = acc[r * TQ + j / 4][j % 4];
            if ((p.epi & 1u) != 0u) v = v * bias[m] + bias[p.M + m];
            if ((p.epi & 2u) != 0u) v = max(v, 0.0);
            y[base + j * pixStep] = v;
        }
    }
}
