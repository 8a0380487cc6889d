#version 450
// proj_bwd: the projection term's backward (see proj_logit.comp), one
// invocation per (n, c), grid-stride:
//   WANT_DX: dx[n][c][s] += dy[n] * e[n][c], added to the wrapped layer's
//            own input gradient, already in dx;
//   WANT_M:  m[n][c] = dy[n] * sum_s h[n][c][s], whose product with the
//            one-hot labels (a GEMM, engine/layer_projection.go) is the
//            embedding's gradient.
// A binding whose result is not wanted is bound to some other tensor and
// never touched.
layout(local_size_x = 256) in;
layout(constant_id = 0) const bool WANT_DX = true;
layout(constant_id = 1) const bool WANT_M = true;
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) writeonly buffer M { float m[]; };
layout(std430, binding = 2) readonly buffer H { float h[]; };
layout(std430, binding = 3) readonly buffer E { float e[]; };
layout(std430, binding = 4) readonly buffer DY { float dy[]; };
layout(push_constant) uniform P { uint batch, c, s; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint total = p.batch * p.c;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
        uint n = i / p.c;
        float g = dy[n];
        uint base = i * p.s;
        if (WANT_DX) {
            float v = g * e[i];
            for (uint j = 0; j < p.s; ++j) dx[base + j] += v;
        }
        if (WANT_M) {
            float pooled = 0.0;
            for (uint j = 0; j < p.s; ++j) pooled += h[base + j];
            m[i] = g * pooled;
        }
    }
}
