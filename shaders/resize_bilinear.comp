#version 450
// resize_bilinear: y[n][c0+c][oy][ox] = a*v + b, where v is x[n][c]
// sampled bilinearly as PyTorch's F.interpolate(mode='bilinear',
// align_corners=False, antialias=False) does: the source row is
// sy = max(scaleH*(oy + 0.5) - 0.5, 0) with scaleH = h/oh (likewise
// columns), read at floor(sy) and the next row, the latter clamped to the
// last. x is [N, c, h, w]; y is [N, ctot, oh, ow] and only channels
// [c0, c0+c) are written. Forward only.
//
// Grid as in pool2d.comp: 8x8 output tiles in x and y, channels from
// chanBase in z, and each invocation loops over the batch, so the source
// coordinates and weights are computed once per output position.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform P { uint h, w, oh, ow, nb, c, ctot, c0, chanBase; float scaleH, scaleW, a, b; } p;
void main() {
    uint ox = gl_WorkGroupID.x * 8u + (gl_LocalInvocationID.x & 7u);
    uint oy = gl_WorkGroupID.y * 8u + (gl_LocalInvocationID.x >> 3u);
    if (ox >= p.ow || oy >= p.oh) return;
    uint ch = gl_WorkGroupID.z + p.chanBase;
    // precise: no fused multiply-add, so every device rounds the product
    // and the difference one at a time, as PyTorch's CPU code does where
    // its compiler does not fuse them (a fused one differs by an ulp).
    precise float sy = max(p.scaleH * (float(oy) + 0.5) - 0.5, 0.0);
    precise float sx = max(p.scaleW * (float(ox) + 0.5) - 0.5, 0.0);
    // sy < h - 0.5 in exact arithmetic; the clamps guard float rounding.
    uint y0 = min(uint(sy), p.h - 1u), x0 = min(uint(sx), p.w - 1u);
    uint y1 = min(y0 + 1u, p.h - 1u), x1 = min(x0 + 1u, p.w - 1u);
    float ly = sy - float(y0), lx = sx - float(x0);
    uint src = ch * p.h * p.w, dst = ((p.c0 + ch) * p.oh + oy) * p.ow + ox;
    uint r0 = src + y0 * p.w, r1 = src + y1 * p.w;
    for (uint n = 0u; n < p.nb; n++) {
        float top = (1.0 - lx) * x[r0 + x0] + lx * x[r0 + x1];
        float bot = (1.0 - lx) * x[r1 + x0] + lx * x[r1 + x1];
        y[dst] = p.a * ((1.0 - ly) * top + ly * bot) + p.b;
        r0 += p.c * p.h * p.w;
        r1 += p.c * p.h * p.w;
        dst += p.ctot * p.oh * p.ow;
    }
}
