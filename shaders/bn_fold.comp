#version 450
// bn_fold: folds an inference batch norm into a per-channel affine for the
// GEMM epilogue: s[c] = gamma[c] / sqrt(var[c] + eps), and
// s[C + c] = beta[c] - mean[c] * s[c], so that bn(v) = v * s[c] + s[C + c].
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer G { float gamma[]; };
layout(std430, binding = 1) readonly buffer B { float beta[]; };
layout(std430, binding = 2) readonly buffer M { float mean[]; };
layout(std430, binding = 3) readonly buffer V { float var_[]; };
layout(std430, binding = 4) writeonly buffer S { float s[]; };
layout(push_constant) uniform P { uint c; float eps; } p;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.c) return;
    float k = gamma[i] / sqrt(var_[i] + p.eps);
    s[i] = k;
    s[p.c + i] = beta[i] - mean[i] * k;
}
