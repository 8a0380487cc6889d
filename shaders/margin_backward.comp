#version 450
// margin_backward: dx[i] = k * f'(x[i], c), elementwise (grid-stride), the
// gradient of k * sum f for margin_loss's f (same KIND, c0, c1 and split).
// The hinge's derivative at its kink (1 + c*x == 0) is 0, PyTorch's
// relu'(0). c is +1 or -1, so c*x is exact and the test c*x > -1 decides
// the kink exactly.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint KIND = 0u;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint n; uint split; float c0; float c1; float k; } p;

float slope(float v, float c) {
    if (KIND == 0u) return c * v > -1.0 ? c : 0.0;
    if (KIND == 1u) return c;
    return v - c;
}

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        dx[i] = p.k * slope(x[i], i < p.split ? p.c0 : p.c1);
    }
}
