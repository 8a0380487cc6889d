#version 450
// toy_mix: draws n points of a 2D Gaussian mixture with equal weights.
// Sample i depends only on (seed, step, i): Philox4x32-10 with counter
// (i, step, 0x746f79, 0) gives one word to pick the mode and two for a
// Box-Muller normal pair. With holdout >= 0 that mode is never picked (the
// others keep equal weights). out is [n,2], centers is [k,2]. Row i is
// sample offset+i of the step: a data-parallel rank's shard of the global
// batch (offset 0 in one process).
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer C { float centers[]; };
layout(std430, binding = 2) readonly buffer S { uint stepv[]; };
layout(push_constant) uniform P { uint n; uint k; int holdout; float stdev; uint seedLo; uint seedHi; uint offset; } p;

uvec4 philox(uvec4 c, uvec2 key) {
    for (int r = 0; r < 10; r++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ key.x, lo1, hi0 ^ c.w ^ key.y, lo0);
        key += uvec2(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

float unit(uint w) { return (float(w >> 9) + 0.5) * (1.0 / 8388608.0); }

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint step = stepv[0];
    uint kk = p.holdout >= 0 ? p.k - 1u : p.k;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        uvec4 w = philox(uvec4(p.offset + i, step, 0x746f79u, 0u), uvec2(p.seedLo, p.seedHi));
        uint m = min(uint(unit(w.x) * float(kk)), kk - 1u);
        if (p.holdout >= 0 && m >= uint(p.holdout)) m++;
        float r = sqrt(-2.0 * log(unit(w.y)));
        float t = 6.283185307179586 * unit(w.z);
        o[2u * i] = centers[2u * m] + p.stdev * r * cos(t);
        o[2u * i + 1u] = centers[2u * m + 1u] + p.stdev * r * sin(t);
    }
}
