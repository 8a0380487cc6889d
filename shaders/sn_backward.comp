#version 450
// sn_backward: spectral norm's weight gradient from the gradient G with
// respect to W_sn = W / sigma, with u and v constant (PyTorch computes them
// without gradient): dW = (G - <G, W_sn> u v^T) / sigma, added to dw when
// acc is set, else written. gd[0] is <G, W_sn>, sg[0] is sigma. Runs over
// the weight tensor's own layout; element i is W(r,c) with
// i = (q * h + r) * kk + t and c = q * kk + t (see sn_colvec).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DW { float dw[]; };
layout(std430, binding = 1) readonly buffer G { float g[]; };
layout(std430, binding = 2) readonly buffer U { float u[]; };
layout(std430, binding = 3) readonly buffer V { float v[]; };
layout(std430, binding = 4) readonly buffer SG { float sg[]; };
layout(std430, binding = 5) readonly buffer GD { float gd[]; };
layout(push_constant) uniform P { uint n; uint h; uint kk; uint acc; } p;
void main() {
    float sigma = sg[0], dot = gd[0];
    uint block = p.h * p.kk;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        uint q = i / block, rem = i % block;
        uint r = rem / p.kk, t = rem % p.kk;
        float d = (g[i] - dot * u[r] * v[q * p.kk + t]) / sigma;
        dw[i] = p.acc != 0u ? dw[i] + d : d;
    }
}
