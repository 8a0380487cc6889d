#version 450
// bce_backward: dx[i] = scale/n * (sigmoid(x[i]) - t[i]), elementwise
// (grid-stride). With CONST_TARGET the target is the push constant t and
// binding 2 is not read.
layout(local_size_x = 256) in;
layout(constant_id = 0) const bool CONST_TARGET = false;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer T { float targets[]; };
layout(push_constant) uniform P { uint n; float target; float k; } p;

// sigmoid without overflow: exp of a non-positive argument only.
float sigmoid(float v) {
    float e = exp(-abs(v));
    return v >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        float t = CONST_TARGET ? p.target : targets[i];
        dx[i] = p.k * (sigmoid(x[i]) - t);
    }
}
