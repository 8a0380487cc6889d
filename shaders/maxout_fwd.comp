#version 450
// maxout_fwd: y[r] = max over j < pieces of x[r*pieces + j], for r < rows
// (rows = N*units; x is [N, units*pieces] with each unit's pieces
// adjacent). y may not alias x.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint rows; uint pieces; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
        uint b = r * p.pieces;
        float m = x[b];
        for (uint j = 1u; j < p.pieces; j++) m = max(m, x[b + j]);
        y[r] = m;
    }
}
