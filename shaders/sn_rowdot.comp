#version 450
// sn_rowdot: y[r] = sum over c < w of W(r,c) * X, for r < h, where X is
// x[c] (a vector: the W v of spectral norm's power iteration) or, with MAT,
// X(r,c) in W's own layout (row sums of an elementwise product: the
// partial sums of <G, W_sn> in spectral norm's backward). W(r,c) is at
// ((c / kk) * h + r) * kk + c % kk, as in sn_colvec. One workgroup per row:
// lanes stride over the row, then a shared-memory tree, a fixed order, so
// the result is the same on every run.
#define WG 64
layout(local_size_x = WG) in;
layout(constant_id = 0) const bool MAT = false;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer W { float wt[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint h; uint w; uint kk; } p;
shared float part[WG];
void main() {
    uint r = gl_WorkGroupID.x;
    uint lid = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint c = lid; c < p.w; c += WG) {
        uint i = ((c / p.kk) * p.h + r) * p.kk + c % p.kk;
        s += wt[i] * (MAT ? x[i] : x[c]);
    }
    part[lid] = s;
    barrier();
    for (uint st = WG / 2; st > 0u; st >>= 1) {
        if (lid < st) part[lid] += part[lid + st];
        barrier();
    }
    if (lid == 0u) y[r] = part[0];
}
