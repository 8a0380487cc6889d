#version 450
// draw_labels: onehot[n][k] = (labels[idx_n] == k), with idx_n an image
// drawn uniformly from the N of the data set, independently for each row
// and of the batch permutation, so the classes follow the data's class
// frequencies. idx_n = floor(w * N / 2^32) for w the first Philox word of
// counter (n, step, drawTag, 0) and key seed: step comes from a device
// counter (a new draw per Increment), and drawTag keeps the stream apart
// from rng.comp's, whose third counter word is 0, under the same seed.
// A data-parallel rank draws rows offset.. of the global batch (offset 0
// in one process), so the ranks' rows together are one process's.
// The multiply-shift favours some images by at most N / 2^32 of a draw.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Out { float onehot[]; };
layout(std430, binding = 1) readonly buffer S { uint stepv[]; };
layout(std430, binding = 2) readonly buffer Labels { uint labels[]; };
layout(push_constant) uniform P { uint batch, n, classes, seedLo, seedHi, offset; } p;

#include "philox.glsl"

const uint drawTag = 0x6c61626cu; // "labl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint step = stepv[0];
    for (uint nb = gl_GlobalInvocationID.x; nb < p.batch; nb += stride) {
        uvec4 w = philox(uvec4(p.offset + nb, step, drawTag, 0u), uvec2(p.seedLo, p.seedHi));
        uint img, lo;
        umulExtended(w.x, p.n, img, lo);
        uint label = labels[img];
        for (uint k = 0; k < p.classes; ++k) onehot[nb * p.classes + k] = k == label ? 1.0 : 0.0;
    }
}
