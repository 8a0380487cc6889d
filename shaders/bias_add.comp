#version 450
// bias_add: y[i] += bias[(i / inner) % c] for i < n, where y is [N, c, inner...].
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer B { float bias[]; };
layout(push_constant) uniform P { uint n; uint c; uint inner; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) y[i] += bias[(i / p.inner) % p.c];
}
