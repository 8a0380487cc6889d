#version 450
// igemm_reduce: the second pass of igemm_tiled.comp's split-K. It sums the
// S partial products part[s][m][c] in order s = 0..S-1 (no atomics: the
// result has the same bits on every run), then applies igemm's epilogue and
// stores into C.
//
// Column c of row m is (outer, inner) = (c / innerN, c % innerN) and lands
// at C[(m + yc0) * mStride + outer * yc * mStride + inner]: with innerN =
// N, mStride = ldc, yc = M for a matmul; innerN = mStride = OH*OW, yc the
// output's channels for a conv forward; innerN = mStride = H*W, yc = Cin
// for backward-data; innerN = mStride = N, yc = M for backward-weights.
// outer * yc * mStride + inner is the column igemm's epilogue calls outCol
// (hasBias reads bias[outCol]).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) buffer C32 { float c32[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(push_constant) uniform P {
    uint M, ntot, innerN, mStride, yc, yc0, S;
    float alpha, beta;
    uint hasBias, epi; // epi: igemm's epilogue bits and act.glsl's field
    float slope;
} p;

#include "act.glsl"

void main() {
    uint c = gl_GlobalInvocationID.x, m = gl_WorkGroupID.y;
    if (c >= p.ntot) return;
    float v = 0.0;
    for (uint s = 0; s < p.S; ++s) v += part[(s * p.M + m) * p.ntot + c];
    uint outCol = c / p.innerN * p.yc * p.mStride + c % p.innerN;
    uint idx = (m + p.yc0) * p.mStride + outCol;
    v *= p.alpha;
    if (p.beta != 0.0) v += p.beta * c32[idx];
    if (p.hasBias != 0u) v += bias[outCol];
    if ((p.epi & 1u) != 0u) v = v * bias[m] + bias[p.M + m];
    if ((p.epi & 2u) != 0u) v = max(v, 0.0);
    v = epiActivate(p.epi, v, (p.epi & EPI_GRAD) != 0u ? bias[idx] : 0.0, p.slope);
    c32[idx] = v;
}
