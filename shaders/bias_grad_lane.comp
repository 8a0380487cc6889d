#version 450
// bias_grad_lane: db[c] = sum over n < batch and j < inner of
// dy[(n*C + c)*inner + j], one invocation per channel. No shared memory or
// barriers: on lavapipe those, and one workgroup per channel, cost more than
// the sums themselves when there are many channels with little work each.
// Kahan compensation keeps the long serial sum as accurate as a tree.
layout(local_size_x = 32) in;
layout(std430, binding = 0) writeonly buffer DB { float db[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(push_constant) uniform P { uint batch; uint c; uint inner; } p;
void main() {
    uint ch = gl_GlobalInvocationID.x;
    if (ch >= p.c) return;
    precise float s = 0.0;
    precise float comp = 0.0;
    uint plane = p.c * p.inner;
    for (uint n = 0u; n < p.batch; n++) {
        uint base = n * plane + ch * p.inner;
        for (uint j = 0u; j < p.inner; j++) {
            precise float yv = dy[base + j] - comp;
            precise float t = s + yv;
            comp = (t - s) - yv;
            s = t;
        }
    }
    db[ch] = s;
}
