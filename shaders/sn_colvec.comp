#version 450
// sn_colvec: y[c] = sum over r < h of W(r,c) * u[r], for c < w: the W^T u of
// spectral norm's power iteration. W is the weight seen as spectral norm's
// [h, w] matrix (dim moved first), read in place from the weight tensor:
// W(r,c) is at ((c / kk) * h + r) * kk + c % kk. With kk = w that is
// row-major [h, w] (dim 0: Conv2d, Linear); with kk = k*k it is
// ConvTranspose2d's [In, Out = h, k, k] (dim 1), so no transposed copy is
// needed. One invocation per column: neighbouring lanes read neighbouring
// words in both layouts.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer W { float wt[]; };
layout(std430, binding = 2) readonly buffer U { float u[]; };
layout(push_constant) uniform P { uint h; uint w; uint kk; } p;
void main() {
    uint c = gl_GlobalInvocationID.x;
    if (c >= p.w) return;
    uint i = (c / p.kk) * p.h * p.kk + c % p.kk;
    float s = 0.0;
    for (uint r = 0u; r < p.h; r++, i += p.kk) s += wt[i] * u[r];
    y[c] = s;
}
