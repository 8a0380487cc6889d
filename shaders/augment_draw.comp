#version 450
// augment_draw: per-sample DiffAugment parameters q[n*8 + 0..7] = b, s, k,
// tx, ty, ox, oy, flip (see augment.comp, engine/augment.go). Philox4x32-10
// as in rng.comp, key = seed, counters (n, step, stream, TAG) and
// (n, step, stream, TAG+1): eight words per sample, fixed by (seed, step,
// stream, n) alone. TAG keeps these counters apart from rng.comp's
// (q, step, 0, 0) under the same seed. Words become floats by rng.comp's
// unit(). ops bits as in augment.comp; a disabled op gets its identity:
// b 0, s 1, k 1, tx 0, ty 0, ox = oy = -2^24 (a box off the image), flip 0.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer S { uint stepv[]; };
layout(push_constant) uniform P { uint nb, ops, seedLo, seedHi, stream, shiftH, shiftW, offH, offW; } p;

const uint TAG = 0x61756700u; // "aug\0"

uvec4 philox(uvec4 c, uvec2 k) {
    for (int r = 0; r < 10; r++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k += uvec2(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// rng.comp's uniform in (0, 1): the top 23 bits, centred.
float unit(uint w) { return (float(w >> 9) + 0.5) * (1.0 / 8388608.0); }

// An integer uniform in [0, m), m <= 2^24, as an exact float. u*m < m in
// exact arithmetic; the min guards the product rounding up to m.
float below(uint w, uint m) { return min(floor(unit(w) * float(m)), float(m - 1u)); }

void main() {
    uint n = gl_GlobalInvocationID.x;
    if (n >= p.nb) return;
    uvec2 key = uvec2(p.seedLo, p.seedHi);
    uvec4 w0 = philox(uvec4(n, stepv[0], p.stream, TAG), key);
    uvec4 w1 = philox(uvec4(n, stepv[0], p.stream, TAG + 1u), key);
    float v[8] = float[8](0.0, 1.0, 1.0, 0.0, 0.0, -16777216.0, -16777216.0, 0.0);
    if ((p.ops & 1u) != 0u) {
        v[0] = unit(w0.x) - 0.5;
        v[1] = unit(w0.y) * 2.0;
        // unit + 0.5 can round up to 1.5 itself; k stays in [0.5, 1.5).
        v[2] = min(unit(w0.z) + 0.5, 1.5 - 1.0 / 8388608.0);
    }
    if ((p.ops & 2u) != 0u) {
        v[3] = below(w0.w, 2u * p.shiftH + 1u) - float(p.shiftH);
        v[4] = below(w1.x, 2u * p.shiftW + 1u) - float(p.shiftW);
    }
    if ((p.ops & 4u) != 0u) {
        v[5] = below(w1.y, p.offH);
        v[6] = below(w1.z, p.offW);
    }
    if ((p.ops & 8u) != 0u) v[7] = unit(w1.w) < 0.5 ? 1.0 : 0.0;
    for (uint i = 0u; i < 8u; i++) q[n * 8u + i] = v[i];
}
