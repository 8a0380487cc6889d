#version 450
// proj_logit: out[n] += sum_c e[n][c] * sum_s h[n][c][s], the projection
// discriminator's class term (Miyato & Koyama 2018) added to the logits of
// the layer it wraps: h is [B, C, S] (S spatial positions), e = [B, C] the
// embedding rows of the batch's labels. One workgroup per sample (grid-
// stride); lanes take channels, each summing its channel's S values, and
// meet in a shared-memory tree: a fixed order, so results are
// deterministic.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer O { float outv[]; };
layout(std430, binding = 1) readonly buffer H { float h[]; };
layout(std430, binding = 2) readonly buffer E { float e[]; };
layout(push_constant) uniform P { uint batch, c, s; } p;
shared float part[64];
void main() {
    uint lid = gl_LocalInvocationID.x;
    for (uint n = gl_WorkGroupID.x; n < p.batch; n += gl_NumWorkGroups.x) {
        float acc = 0.0;
        for (uint c = lid; c < p.c; c += 64u) {
            uint base = (n * p.c + c) * p.s;
            float pooled = 0.0;
            for (uint j = 0; j < p.s; ++j) pooled += h[base + j];
            acc += e[n * p.c + c] * pooled;
        }
        part[lid] = acc;
        barrier();
        for (uint half_ = 32u; half_ > 0u; half_ >>= 1) {
            if (lid < half_) part[lid] += part[lid + half_];
            barrier();
        }
        if (lid == 0u) outv[n] += part[0];
        barrier(); // part is reused by the next sample
    }
}
