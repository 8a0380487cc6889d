#version 450
// sn_normalize: spectral norm's vector steps, in one workgroup (the vectors
// have at most a few thousand elements). MODE 0: y = x / max(||x||, eps)
// (v from W^T u). MODE 1: the same, then s[0] = y . x (u from W v, and
// sigma = u . W v). MODE 2: s[0] = y . x with y only read (sigma from the
// stored u, without a power iteration). Sums meet in a shared-memory tree:
// the same bits on every run.
#define WG 256
layout(local_size_x = WG) in;
layout(constant_id = 0) const uint MODE = 0u;
layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer S { float s[]; };
layout(push_constant) uniform P { uint n; float eps; } p;
shared float part[WG];

float treeSum(float v, uint lid) {
    part[lid] = v;
    barrier();
    for (uint st = WG / 2; st > 0u; st >>= 1) {
        if (lid < st) part[lid] += part[lid + st];
        barrier();
    }
    float t = part[0];
    barrier(); // every lane has read part[0] before it is reused
    return t;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    float scale = 1.0;
    if (MODE != 2u) {
        float ss = 0.0;
        for (uint i = lid; i < p.n; i += WG) ss += x[i] * x[i];
        scale = max(sqrt(treeSum(ss, lid)), p.eps);
    }
    float d = 0.0;
    for (uint i = lid; i < p.n; i += WG) {
        float yi;
        if (MODE == 2u) {
            yi = y[i];
        } else {
            yi = x[i] / scale;
            y[i] = yi;
        }
        d += yi * x[i];
    }
    if (MODE == 0u) return;
    d = treeSum(d, lid);
    if (lid == 0u) s[0] = d;
}
