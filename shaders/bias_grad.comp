#version 450
// bias_grad: db[c] = sum over n < batch and j < inner of dy[(n*C + c)*inner + j].
// One workgroup per channel. Lanes walk the channel's batch*inner elements
// as a flat index k = n*inner + j, kept as (n, j) and advanced without a
// division per element, so small planes (1x1, 4x4) still keep every lane
// busy. Partial sums meet in a shared-memory tree: a fixed order, so the
// result is deterministic.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DB { float db[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(push_constant) uniform P { uint batch; uint c; uint inner; } p;
shared float part[256];
void main() {
    uint ch = gl_WorkGroupID.x;
    uint lid = gl_LocalInvocationID.x;
    uint stepN = 256u / p.inner, stepJ = 256u % p.inner;
    uint n = lid / p.inner, j = lid % p.inner;
    uint plane = p.c * p.inner;
    float s = 0.0;
    while (n < p.batch) {
        s += dy[n * plane + ch * p.inner + j];
        j += stepJ;
        n += stepN;
        if (j >= p.inner) { j -= p.inner; n += 1u; }
    }
    part[lid] = s;
    barrier();
    for (uint h = 128u; h > 0u; h >>= 1) {
        if (lid < h) part[lid] += part[lid + h];
        barrier();
    }
    if (lid == 0u) db[ch] = part[0];
}
