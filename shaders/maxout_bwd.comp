#version 450
// maxout_bwd: dx[r*pieces + j] = dy[r] for the first j where x is largest,
// 0 for the other pieces (the subgradient PyTorch's max picks). dx may not
// alias x or dy.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint rows; uint pieces; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
        uint b = r * p.pieces;
        uint arg = 0u;
        float m = x[b];
        for (uint j = 1u; j < p.pieces; j++) {
            float v = x[b + j];
            if (v > m) { m = v; arg = j; }
        }
        float g = dy[r];
        for (uint j = 0u; j < p.pieces; j++) dx[b + j] = j == arg ? g : 0.0;
    }
}
