#version 450
// rng: counter-based random numbers. Philox4x32-10 with key = seed and
// counter = (q, step, 0, 0) gives four words for elements 4q..4q+3, so an
// element depends only on (seed, step, index). step is read from a device
// counter, so one recording yields a new batch per Increment.
// Specialization constant 0: 0 uniform in [a, b], 1 normal (mean a, std b)
// by Box-Muller on word pairs, 2 adds normal noise to x with a std that
// falls linearly with the step, a*max(0, 1 - step/b) (annealed instance
// noise; b > 0).
// x[i] is element offset+i of the step's stream: a data-parallel rank
// draws its shard of the global batch's elements (offset 0 in one
// process), walking the Philox quads that cover [offset, offset+n).
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint DIST = 0u;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 0) buffer X4 { vec4 x4[]; }; // x as quads (offset % 4 == 0)
layout(std430, binding = 1) readonly buffer S { uint stepv[]; };
layout(push_constant) uniform P { uint n; uint seedLo; uint seedHi; float a; float b; uint offset; } p;

#include "philox.glsl"

// A uniform float in (0, 1): the top 23 bits, centred (exact in fp32), so
// never 0 or 1 and log() is always finite.
float unit(uint w) { return (float(w >> 9) + 0.5) * (1.0 / 8388608.0); }

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint first = p.offset / 4u;
    uint last = (p.offset + p.n + 3u) / 4u;
    uint step = stepv[0];
    for (uint q = first + gl_GlobalInvocationID.x; q < last; q += stride) {
        uvec4 w = philox(uvec4(q, step, 0u, 0u), uvec2(p.seedLo, p.seedHi));
        vec4 v;
        if (DIST == 0u) {
            v = vec4(unit(w.x), unit(w.y), unit(w.z), unit(w.w)) * (p.b - p.a) + p.a;
        } else {
            const float twoPi = 6.283185307179586;
            float r0 = sqrt(-2.0 * log(unit(w.x)));
            float r1 = sqrt(-2.0 * log(unit(w.z)));
            float t0 = twoPi * unit(w.y), t1 = twoPi * unit(w.w);
            v = vec4(r0 * cos(t0), r0 * sin(t0), r1 * cos(t1), r1 * sin(t1));
            v = DIST == 1u ? v * p.b + p.a : v * (p.a * max(0.0, 1.0 - float(step) / p.b));
        }
        uint e0 = 4u * q;
        if ((p.offset & 3u) == 0u && e0 >= p.offset && e0 - p.offset + 4u <= p.n) {
            // A whole quad: one 16-byte store. On CPU devices each store
            // is a loop over the lanes, so four scalar ones cost four loops.
            uint i = (e0 - p.offset) >> 2;
            if (DIST == 2u) x4[i] += v;
            else x4[i] = v;
        } else {
            for (uint j = 0u; j < 4u; ++j) {
                uint e = e0 + j;
                if (e < p.offset || e - p.offset >= p.n) continue;
                if (DIST == 2u) x[e - p.offset] += v[j];
                else x[e - p.offset] = v[j];
            }
        }
    }
}
