#version 450
// gather_u8: builds a real batch from the device-resident uint8 data set.
//
// out[n][i] = data[idx][i] / 127.5 - 1 for the batch's n-th image, where
// idx is position p = counter*global + offset + n of a pseudo-random
// permutation of the N images that changes every epoch (epoch = p / N):
// see permute.glsl, which gather_labels.comp shares. One process has
// global = batch and offset 0; a data-parallel rank r of W has global =
// W*batch and offset r*batch.
// The images live in up to four buffers (a storage-buffer binding is
// limited in size); chunk c holds images [c*perChunk, (c+1)*perChunk).
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Out { float outv[]; };
layout(std430, binding = 1) readonly buffer Counter { uint counter; };
layout(std430, binding = 2) readonly buffer D0 { uint d0[]; };
layout(std430, binding = 3) readonly buffer D1 { uint d1[]; };
layout(std430, binding = 4) readonly buffer D2 { uint d2[]; };
layout(std430, binding = 5) readonly buffer D3 { uint d3[]; };
layout(push_constant) uniform P {
    uint batch, n, imgBytes, perChunk, seedLo, seedHi, halfBits, global, offset;
} p;

#include "permute.glsl"

uint loadByte(uint img, uint off) {
    uint c = img / p.perChunk;
    uint b = (img - c * p.perChunk) * p.imgBytes + off;
    uint w;
    if (c == 0u) w = d0[b >> 2];
    else if (c == 1u) w = d1[b >> 2];
    else if (c == 2u) w = d2[b >> 2];
    else w = d3[b >> 2];
    return (w >> ((b & 3u) * 8u)) & 0xffu;
}

void main() {
    uint total = p.batch * p.imgBytes;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
        uint nb = i / p.imgBytes, off = i - nb * p.imgBytes;
        uint img = batchImage(counter, p.global, p.offset + nb, p.n, p.halfBits, p.seedLo, p.seedHi);
        outv[i] = float(loadByte(img, off)) / 127.5 - 1.0;
    }
}
