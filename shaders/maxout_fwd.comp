#version 450
// maxout_fwd: y[r] = max over j < pieces of x[r*pieces + j], for r < rows
// (rows = N*units; x is [N, units*pieces] with each unit's pieces
// adjacent). y may not alias x.
//
// The q4 variant (rows % 4 == 0, pieces <= 16; rows counts quads) gives an
// invocation four rows: their 4*pieces inputs are pieces aligned vec4s and
// their outputs one, where the scalar kernel made a per-lane load loop (CPU
// devices) for every input.
// vkgan:variant q4 -DQ4=1
layout(local_size_x = 256) in;
#ifdef Q4
layout(std430, binding = 0) writeonly buffer Y { vec4 y[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x[]; };
#else
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
layout(push_constant) uniform P { uint rows; uint pieces; } p;
#ifdef Q4
// The pieces as a constant, so the quad's vec4s are indexed by constants
// and stay in registers (dynamic indices make them per-lane memory).
layout(constant_id = 0) const uint PIECES = 1u;
#endif
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
#ifdef Q4
        vec4 v[PIECES];
        for (uint j = 0u; j < PIECES; j++) v[j] = x[r * PIECES + j];
        vec4 out4;
        for (uint i = 0u; i < 4u; i++) {
            uint e = i * PIECES;
            float m = v[e >> 2][e & 3u];
            for (uint j = 1u; j < PIECES; j++) m = max(m, v[(e + j) >> 2][(e + j) & 3u]);
            out4[i] = m;
        }
        y[r] = out4;
#else
        uint b = r * p.pieces;
        float m = x[b];
        for (uint j = 1u; j < p.pieces; j++) m = max(m, x[b + j]);
        y[r] = m;
#endif
    }
}
