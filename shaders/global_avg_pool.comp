#version 450
// global_avg_pool: y[n][c0+c] = the mean of x[n][c][.][.] over its hw
// elements. x is [N, c, h, w] (planes = N*c); y is [N, ctot] (or
// [N, ctot, 1, 1]) and only channels [c0, c0+c) are written. Forward only.
//
// One invocation per plane, grid-stride over the planes; the split into
// (n, c) is one division per plane of hw loads.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint planes, hw, c, ctot, c0; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint plane = gl_GlobalInvocationID.x; plane < p.planes; plane += stride) {
        uint base = plane * p.hw;
        float s = 0.0;
        for (uint i = 0u; i < p.hw; i++) s += x[base + i];
        uint n = plane / p.c;
        y[n * p.ctot + p.c0 + plane - n * p.c] = s / float(p.hw);
    }
}
