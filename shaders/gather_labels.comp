#version 450
// gather_labels: onehot[n][k] = (labels[idx] == k) for row n of a real
// batch, where idx is the image gather_u8.comp puts at row n for the same
// (counter, seed, global, offset): both walk permute.glsl's permutation. One invocation
// per row, so the permutation is computed once per image, not per class.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Out { float onehot[]; };
layout(std430, binding = 1) readonly buffer Counter { uint counter; };
layout(std430, binding = 2) readonly buffer Labels { uint labels[]; };
layout(push_constant) uniform P {
    uint batch, n, classes, seedLo, seedHi, halfBits, global, offset;
} p;

#include "permute.glsl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint nb = gl_GlobalInvocationID.x; nb < p.batch; nb += stride) {
        uint img = batchImage(counter, p.global, p.offset + nb, p.n, p.halfBits, p.seedLo, p.seedHi);
        uint label = labels[img];
        for (uint k = 0; k < p.classes; ++k) onehot[nb * p.classes + k] = k == label ? 1.0 : 0.0;
    }
}
