#version 450
// bn_infer: batch-norm forward with running statistics,
// y = (x - runMean[c]) * gamma[c] / sqrt(runVar[c] + eps) + beta[c].
// Elementwise over all N*C*HW values (grid-stride); c = (i / hw) % C.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer G { float gamma[]; };
layout(std430, binding = 3) readonly buffer B { float beta[]; };
layout(std430, binding = 4) readonly buffer RM { float runMean[]; };
layout(std430, binding = 5) readonly buffer RV { float runVar[]; };
layout(push_constant) uniform P { uint total; uint c; uint hw; float eps; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.total; i += stride) {
        uint ch = (i / p.hw) % p.c;
        y[i] = (x[i] - runMean[ch]) * (gamma[ch] * inversesqrt(runVar[ch] + p.eps)) + beta[ch];
    }
}
