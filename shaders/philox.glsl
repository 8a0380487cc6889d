// philox.glsl: Philox4x32-10 (Salmon et al., SC 2011), the counter-based
// generator of rng.comp and draw_labels.comp (see engine/rng.go). Not a
// kernel (gen.go compiles *.comp only): #included.
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
