#version 450
// act_fwd: y[i] = f(x[i]) for i < n; f is chosen by specialization
// constant 0: 0 ReLU, 1 LeakyReLU(slope), 2 tanh, 3 sigmoid. y may alias x.
//
// The w2 variant reads and writes two floats per 64-bit word (n counts
// words): on CPU devices every buffer access is a per-lane scalar loop, so
// this halves them. The host uses it for even lengths.
// vkgan:variant w2 -DWIDE=1
#ifdef WIDE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0u;
#ifdef WIDE
layout(std430, binding = 0) writeonly buffer Y { uint64_t y[]; };
layout(std430, binding = 1) readonly buffer X { uint64_t x[]; };
#else
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
layout(push_constant) uniform P { uint n; float slope; } p;

#include "act.glsl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
#ifdef WIDE
        vec2 v = uintBitsToFloat(unpackUint2x32(x[i]));
        y[i] = packUint2x32(floatBitsToUint(vec2(actOf(OP, v.x, p.slope), actOf(OP, v.y, p.slope))));
#else
        y[i] = actOf(OP, x[i], p.slope);
#endif
    }
}
