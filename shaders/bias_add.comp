#version 450
// bias_add: y[i] += bias[(i / inner) % c] for i < n, where y is [N, c, inner...].
// Integer division per element is slow where it is not native (lavapipe
// scalarises it: about 4x slower measured), so each invocation divides once and
// then advances its (channel, position-in-plane) pair by the constant
// grid stride with compares and subtractions.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer B { float bias[]; };
layout(push_constant) uniform P { uint n; uint c; uint inner; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint stepJ = stride % p.inner, stepC = (stride / p.inner) % p.c;
    uint i = gl_GlobalInvocationID.x;
    uint j = i % p.inner, ch = (i / p.inner) % p.c;
    for (; i < p.n; i += stride) {
        y[i] += bias[ch];
        j += stepJ;
        ch += stepC;
        if (j >= p.inner) { j -= p.inner; ch += 1u; }
        if (ch >= p.c) ch -= p.c;
    }
}
