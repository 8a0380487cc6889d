#version 450
// act_bwd: dx[i] = dy[i] * f'(.) for i < n, with specialization constant 0
// as in act_fwd. ReLU and LeakyReLU take the forward input x; tanh and
// sigmoid take the forward output y (f' is 1-y^2 and y(1-y)). dx may alias dy.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0u;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(push_constant) uniform P { uint n; float slope; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        float g = dy[i];
        float s = v[i];
        float r;
        if (OP == 0u) r = s > 0.0 ? g : 0.0;
        else if (OP == 1u) r = s > 0.0 ? g : p.slope * g;
        else if (OP == 2u) r = g * (1.0 - s * s);
        else r = g * s * (1.0 - s);
        dx[i] = r;
    }
}
