#version 450
// maxout_bwd: dx[r*pieces + j] = dy[r] for the first j where x is largest,
// 0 for the other pieces (the subgradient PyTorch's max picks). dx may not
// alias x or dy.
//
// The q4 variant (rows % 4 == 0, pieces <= 16; rows counts quads) gives an
// invocation four rows, read and written as aligned vec4s (see
// maxout_fwd.comp).
// vkgan:variant q4 -DQ4=1
layout(local_size_x = 256) in;
#ifdef Q4
layout(std430, binding = 0) writeonly buffer DX { vec4 dx[]; };
layout(std430, binding = 1) readonly buffer DY { vec4 dy[]; };
layout(std430, binding = 2) readonly buffer X { vec4 x[]; };
#else
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
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
        vec4 g = dy[r];
        for (uint i = 0u; i < 4u; i++) {
            uint e = i * PIECES, arg = 0u;
            float m = v[e >> 2][e & 3u];
            for (uint j = 1u; j < PIECES; j++) {
                float xv = v[(e + j) >> 2][(e + j) & 3u];
                if (xv > m) { m = xv; arg = j; }
            }
            // The inputs are read: their slots take the gradient.
            for (uint j = 0u; j < PIECES; j++) v[(e + j) >> 2][(e + j) & 3u] = j == arg ? g[i] : 0.0;
        }
        for (uint j = 0u; j < PIECES; j++) dx[r * PIECES + j] = v[j];
#else
        uint b = r * p.pieces;
        uint arg = 0u;
        float m = x[b];
        for (uint j = 1u; j < p.pieces; j++) {
            float v = x[b + j];
            if (v > m) { m = v; arg = j; }
        }
        float g = dy[r];
        for (uint j = 0u; j < p.pieces; j++) dx[b + j] = j == arg ? g : 0.0;
#endif
    }
}
