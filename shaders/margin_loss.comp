#version 450
// margin_loss: loss[0] = k * sum_{i<n} f(x[i], c), where c is c0 for
// i < split and c1 from there on: a joint batch's real and fake halves (a
// single term sets split = n). KIND picks f, for the hinge and
// least-squares GAN losses (engine/loss_margin.go):
//   0 hinge:  max(1 + c*x, 0)  c = -1: D on real, +1: D on fake
//   1 linear: c*x              c = -1: the hinge loss's G term
//   2 square: (x - c)^2 / 2    c: the least-squares target
// One workgroup: per-lane partial sums, then a shared-memory tree, as in
// bce_loss; GAN logits are one per sample, so n is small.
#define WG 256
layout(local_size_x = WG) in;
layout(constant_id = 0) const uint KIND = 0u;
layout(std430, binding = 0) writeonly buffer L { float loss[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; uint split; float c0; float c1; float k; } p;

shared float partial[WG];

float term(float v, float c) {
    if (KIND == 0u) return max(1.0 + c * v, 0.0);
    if (KIND == 1u) return c * v;
    float d = v - c;
    return 0.5 * d * d;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = lid; i < p.n; i += WG) {
        s += term(x[i], i < p.split ? p.c0 : p.c1);
    }
    partial[lid] = s;
    barrier();
    for (uint st = WG / 2; st > 0; st >>= 1) {
        if (lid < st) partial[lid] += partial[lid + st];
        barrier();
    }
    if (lid == 0) loss[0] = partial[0] * p.k;
}
