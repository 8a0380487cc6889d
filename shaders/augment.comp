#version 450
// augment: DiffAugment (Zhao et al. 2020, policy color,translation,cutout)
// plus a horizontal flip, on an NCHW batch with per-sample parameters
// q[n*8 + 0..7] = b, s, k, tx, ty, ox, oy, flip (engine/augment.go). In
// order: flip (q7 >= 0.5: column j reads W-1-j), colour (brightness x+b,
// saturation (x-m)*s+m with m the channel mean per pixel, contrast
// (x-M)*k+M with M the sample mean), translation (out[i,j] = in[i+tx,
// j+ty], zero outside), cutout (zero on rows [ox-ch/2, ox-ch/2+ch) x
// columns [oy-cw/2, oy-cw/2+cw)). ops bits: 1 colour, 2 translation,
// 4 cutout, 8 flip; a clear bit skips the op whatever its parameters.
//
// DIR 0 (forward): Y = aug(X). DIR 1 (backward): Y = aug^T(X), X being
// dL/dout and Y dL/din. The map is affine in the input for fixed
// parameters, so the backward is the transpose of its linear part.
//
// One workgroup per sample (looping when the batch exceeds the grid).
// Pass 1 sums over the sample what contrast needs: forward, sum(x), since
// saturation keeps each pixel's channel mean and brightness adds b to all,
// so M = sum(x)/N + b; backward, the sum of dL/d(contrast output), which is
// dy carried back through cutout and translation. Pass 2 writes each pixel
// from its channels alone. Sums go lane-strided, Kahan-compensated, then
// through a fixed shared-memory tree, so results are the same every run.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint DIR = 0u;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(push_constant) uniform P { uint nb, c, h, w, ops, ch, cw; } p;
shared float part[256];

// An integer parameter: nearest integer, clamped so the int conversion is
// defined for any float (2^24 is off any image a tensor can hold).
int iparam(float v) { return int(clamp(floor(v + 0.5), -16777216.0, 16777216.0)); }

void main() {
    uint lid = gl_LocalInvocationID.x;
    bool color = (p.ops & 1u) != 0u, trans = (p.ops & 2u) != 0u;
    bool cut = (p.ops & 4u) != 0u, flip = (p.ops & 8u) != 0u;
    int H = int(p.h), W = int(p.w);
    uint hw = p.h * p.w, per = p.c * hw;
    for (uint n = gl_WorkGroupID.x; n < p.nb; n += gl_NumWorkGroups.x) {
        uint qb = n * 8u, base = n * per;
        float b = q[qb], s = q[qb + 1u], k = q[qb + 2u];
        int tx = trans ? iparam(q[qb + 3u]) : 0, ty = trans ? iparam(q[qb + 4u]) : 0;
        // Cutout's first row and column; with cutout off, a box off the image.
        int r0 = cut ? iparam(q[qb + 5u]) - int(p.ch / 2u) : -33554432;
        int c0 = cut ? iparam(q[qb + 6u]) - int(p.cw / 2u) : -33554432;
        bool fl = flip && q[qb + 7u] >= 0.5;

        float total = 0.0;
        if (color) {
            precise float acc = 0.0;
            precise float comp = 0.0;
            for (uint e = lid; e < per; e += 256u) {
                float v = x[base + e];
                if (DIR == 1u) {
                    // dy reaches the colour output only where the output
                    // pixel is not cut and its source is inside.
                    int i = int((e % hw) / p.w), j = int(e % p.w);
                    bool boxed = i >= r0 && i < r0 + int(p.ch) && j >= c0 && j < c0 + int(p.cw);
                    int si = i + tx, sj = j + ty;
                    if (boxed || si < 0 || si >= H || sj < 0 || sj >= W) v = 0.0;
                }
                precise float yv = v - comp;
                precise float t = acc + yv;
                comp = (t - acc) - yv;
                acc = t;
            }
            part[lid] = acc;
            barrier();
            for (uint half_ = 128u; half_ > 0u; half_ >>= 1) {
                if (lid < half_) part[lid] += part[lid + half_];
                barrier();
            }
            total = part[0];
            // Every lane has read part[0] before the next sample writes it.
            barrier();
        }
        float fn = float(per), fc = float(p.c);

        for (uint pix = lid; pix < hw; pix += 256u) {
            int i = int(pix / p.w), j = int(pix % p.w);
            if (DIR == 0u) {
                bool boxed = i >= r0 && i < r0 + int(p.ch) && j >= c0 && j < c0 + int(p.cw);
                int si = i + tx, sj = j + ty;
                if (boxed || si < 0 || si >= H || sj < 0 || sj >= W) {
                    for (uint ci = 0u; ci < p.c; ci++) y[base + ci * hw + pix] = 0.0;
                    continue;
                }
                uint src = base + uint(si) * p.w + uint(fl ? W - 1 - sj : sj);
                if (!color) {
                    for (uint ci = 0u; ci < p.c; ci++) y[base + ci * hw + pix] = x[src + ci * hw];
                    continue;
                }
                // The reference's order: u = x + b, then the channel mean
                // of u, then saturation, then contrast about M.
                float mu = 0.0;
                for (uint ci = 0u; ci < p.c; ci++) mu += x[src + ci * hw] + b;
                mu /= fc;
                float M = total / fn + b;
                for (uint ci = 0u; ci < p.c; ci++) {
                    float v = ((x[src + ci * hw] + b) - mu) * s + mu;
                    y[base + ci * hw + pix] = (v - M) * k + M;
                }
            } else {
                // The colour output pixel (i, fj) that input pixel (i, j)
                // feeds, and the output pixel (oi, oj) that reads it.
                int fj = fl ? W - 1 - j : j;
                int oi = i - tx, oj = fj - ty;
                bool boxed = oi >= r0 && oi < r0 + int(p.ch) && oj >= c0 && oj < c0 + int(p.cw);
                bool keep = !boxed && oi >= 0 && oi < H && oj >= 0 && oj < W;
                uint dst = base + uint(keep ? oi * W + oj : 0);
                if (!color) {
                    for (uint ci = 0u; ci < p.c; ci++) y[base + ci * hw + pix] = keep ? x[dst + ci * hw] : 0.0;
                    continue;
                }
                // Contrast: dv = k dz + (1-k)/N sum(dz); saturation:
                // du = s dv + (1-s)/C sum_c(dv); brightness passes du on.
                float shift = (1.0 - k) * total / fn;
                float sv = 0.0;
                for (uint ci = 0u; ci < p.c; ci++) sv += k * (keep ? x[dst + ci * hw] : 0.0) + shift;
                float ssh = (1.0 - s) * sv / fc;
                for (uint ci = 0u; ci < p.c; ci++) {
                    float dv = k * (keep ? x[dst + ci * hw] : 0.0) + shift;
                    y[base + ci * hw + pix] = s * dv + ssh;
                }
            }
        }
    }
}
