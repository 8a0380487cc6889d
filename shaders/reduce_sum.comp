#version 450
// reduce_sum: out[0] = scale * sum(x[i], i < n), in one workgroup.
// Each lane sums a contiguous chunk with Kahan compensation (precise keeps
// the compiler from folding the compensation away), then the lanes meet in a
// shared-memory tree. One workgroup needs no scratch buffer and gives the
// same bits on every run; see engine/reduce.go for why that was chosen.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer O { float outv[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; float scale; } p;
shared float part[256];
void main() {
    uint lid = gl_LocalInvocationID.x;
    precise float s = 0.0;
    precise float comp = 0.0;
    // Strided, not contiguous, so neighbouring lanes read neighbouring words.
    for (uint i = lid; i < p.n; i += 256u) {
        precise float yv = x[i] - comp;
        precise float t = s + yv;
        comp = (t - s) - yv;
        s = t;
    }
    part[lid] = s;
    barrier();
    for (uint h = 128u; h > 0u; h >>= 1) {
        if (lid < h) part[lid] += part[lid + h];
        barrier();
    }
    if (lid == 0u) outv[0] = part[0] * p.scale;
}
