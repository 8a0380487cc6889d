#version 450
// bce_loss: loss[0] = mean_i max(x,0) - x*t + log(1 + exp(-|x|)), the
// numerically stable binary cross-entropy with logits. One workgroup:
// per-lane partial sums, then a shared-memory tree. With CONST_TARGET the
// target is the push constant t for every element (GAN labels) and binding
// 2 is not read.
#define WG 256
layout(local_size_x = WG) in;
layout(constant_id = 0) const bool CONST_TARGET = false;
layout(std430, binding = 0) writeonly buffer L { float loss[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer T { float targets[]; };
layout(push_constant) uniform P { uint n; float target; float invN; } p;

shared float partial[WG];

// softplus(-|x|) = log(1 + exp(-|x|)); a short series where 1 + e rounds.
float log1pExpNeg(float ax) {
    float e = exp(-ax);
    return e < 1e-3 ? e * (1.0 - e * (0.5 - e / 3.0)) : log(1.0 + e);
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = lid; i < p.n; i += WG) {
        float v = x[i];
        float t = CONST_TARGET ? p.target : targets[i];
        s += max(v, 0.0) - v * t + log1pExpNeg(abs(v));
    }
    partial[lid] = s;
    barrier();
    for (uint st = WG / 2; st > 0; st >>= 1) {
        if (lid < st) partial[lid] += partial[lid + st];
        barrier();
    }
    if (lid == 0) loss[0] = partial[0] * p.invN;
}
