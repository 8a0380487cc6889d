#version 450
// sn_scale: y[i] = x[i] / s[0] for i < n: spectral norm's W_sn = W / sigma,
// with sigma read from the device, where the power iteration left it.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer S { float s[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
    float sigma = s[0];
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) y[i] = x[i] / sigma;
}
