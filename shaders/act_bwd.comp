#version 450
// act_bwd: dx[i] = dy[i] * f'(.) for i < n, with specialization constant 0
// as in act_fwd. ReLU and LeakyReLU take the forward input x; tanh and
// sigmoid take the forward output y (f' is 1-y^2 and y(1-y)). dx may alias dy.
//
// The w2 variant handles two floats per 64-bit word (n counts words), as
// act_fwd's does.
// vkgan:variant w2 -DWIDE=1
#ifdef WIDE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0u;
#ifdef WIDE
layout(std430, binding = 0) writeonly buffer DX { uint64_t dx[]; };
layout(std430, binding = 1) readonly buffer DY { uint64_t dy[]; };
layout(std430, binding = 2) readonly buffer V { uint64_t v[]; };
#else
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#endif
layout(push_constant) uniform P { uint n; float slope; } p;
#include "act.glsl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
#ifdef WIDE
        vec2 g = uintBitsToFloat(unpackUint2x32(dy[i]));
        vec2 s = uintBitsToFloat(unpackUint2x32(v[i]));
        dx[i] = packUint2x32(floatBitsToUint(vec2(actGrad(OP, g.x, s.x, p.slope), actGrad(OP, g.y, s.y, p.slope))));
#else
        dx[i] = actGrad(OP, dy[i], v[i], p.slope);
#endif
    }
}
