#version 450
// fill: x[i] = value for i < n.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; float value; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) x[i] = p.value;
}
