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

// Tanh without the inf/inf of (e^2x-1)/(e^2x+1): for |x| >= 0.25 use
// (1-t)/(1+t) with t = e^-2|x| in (0, 0.61], which cannot overflow and keeps
// 1-t well away from cancellation; below that a Taylor series (its first
// omitted term is under 1e-8 relative).
float safeTanh(float v) {
    float a = abs(v);
    if (a < 0.25) {
        float v2 = v * v;
        return v + v * v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 + v2 * (-17.0 / 315.0 + v2 * (62.0 / 2835.0))));
    }
    float t = exp(-2.0 * a);
    return sign(v) * (1.0 - t) / (1.0 + t);
}

// Sigmoid from e^-|x| in (0, 1], so exp never overflows.
float safeSigmoid(float v) {
    float t = exp(-abs(v));
    return v >= 0.0 ? 1.0 / (1.0 + t) : t / (1.0 + t);
}

float act(float v) {
    if (OP == 0u) return max(v, 0.0);
    if (OP == 1u) return v > 0.0 ? v : p.slope * v;
    if (OP == 2u) return safeTanh(v);
    return safeSigmoid(v);
}

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
#ifdef WIDE
        vec2 v = uintBitsToFloat(unpackUint2x32(x[i]));
        y[i] = packUint2x32(floatBitsToUint(vec2(act(v.x), act(v.y))));
#else
        y[i] = act(x[i]);
#endif
    }
}
