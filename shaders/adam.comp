#version 450
// adam: one Adam/AdamW step over flat buffers, as torch.optim.Adam/AdamW:
//   Adam:  g += wd*p           AdamW: p *= 1 - lr*wd
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// t is read from the step counter, so a replayed recording steps correctly.
// lr follows an optional linear decay keyed by t (decayEnd = 0: constant):
//   lr(t) = lr for t <= decayStart, lr*decayTo for t >= decayEnd, linear
//   between, so a schedule needs no re-recording.
//
// Four elements at a time as vec4s, then the last n % 4 one by one: on CPU
// devices every buffer access is a per-lane loop, so a 16-byte access does
// the work of four; the arithmetic is the same per element.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Param { float param[]; };
layout(std430, binding = 1) readonly buffer Grad { float grad[]; };
layout(std430, binding = 2) buffer M { float m[]; };
layout(std430, binding = 3) buffer V { float v[]; };
layout(std430, binding = 0) buffer Param4 { vec4 param4[]; };
layout(std430, binding = 1) readonly buffer Grad4 { vec4 grad4[]; };
layout(std430, binding = 2) buffer M4 { vec4 m4[]; };
layout(std430, binding = 3) buffer V4 { vec4 v4[]; };
layout(std430, binding = 4) readonly buffer Step { uint step[]; };
// logBeta1/2 = log(beta) from the host in float64 (a float log near 1 is
// only accurate to about 2^-21 absolute); -1e30 for beta = 0.
layout(push_constant) uniform P {
    uint n; float lr; float beta1; float beta2; float eps; float wd; uint decoupled;
    float logBeta1; float logBeta2;
    uint decayStart; uint decayEnd; float decayTo;
} p;

// 1 - exp(y) for y <= 0, keeping relative accuracy near 0 (no expm1 in GLSL).
float oneMinusExp(float y) {
    if (y > -0.5) {
        float e = 1.0 + y / 9.0;
        e = 1.0 + y / 8.0 * e;
        e = 1.0 + y / 7.0 * e;
        e = 1.0 + y / 6.0 * e;
        e = 1.0 + y / 5.0 * e;
        e = 1.0 + y / 4.0 * e;
        e = 1.0 + y / 3.0 * e;
        e = 1.0 + y / 2.0 * e;
        return -y * e;
    }
    return 1.0 - exp(y);
}

void main() {
    // A step of 0 (counter not incremented) acts as 1 rather than divide by 0.
    uint ti = max(step[0], 1u);
    float t = float(ti);
    float lr = p.lr;
    if (p.decayEnd != 0u && ti > p.decayStart) {
        float f = min(float(ti - p.decayStart) / float(p.decayEnd - p.decayStart), 1.0);
        lr *= 1.0 - f * (1.0 - p.decayTo);
    }
    float stepSize = lr / oneMinusExp(t * p.logBeta1);
    float bc2Sqrt = sqrt(oneMinusExp(t * p.logBeta2));
    float decay = 1.0 - lr * p.wd;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint n4 = p.n / 4u;
    for (uint i = gl_GlobalInvocationID.x; i < n4; i += stride) {
        vec4 w = param4[i], g = grad4[i];
        if (p.decoupled != 0u) {
            w *= decay;
        } else {
            g += p.wd * w;
        }
        vec4 mi = p.beta1 * m4[i] + (1.0 - p.beta1) * g;
        vec4 vi = p.beta2 * v4[i] + (1.0 - p.beta2) * g * g;
        m4[i] = mi;
        v4[i] = vi;
        param4[i] = w - stepSize * mi / (sqrt(vi) / bc2Sqrt + p.eps);
    }
    for (uint i = 4u * n4 + gl_GlobalInvocationID.x; i < p.n; i += stride) {
        float w = param[i], g = grad[i];
        if (p.decoupled != 0u) {
            w *= decay;
        } else {
            g += p.wd * w;
        }
        float mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        float vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = w - stepSize * mi / (sqrt(vi) / bc2Sqrt + p.eps);
    }
}
