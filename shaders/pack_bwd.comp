#version 450
// pack_bwd: rewrites conv weights w [cout, cin, kh, kw] into igemm.comp
// mode 6's A: per output parity class z (sh*sw of them), a [cin][kp]
// matrix whose row m lists, in mode 2's k order (co, th, tw), the taps
// w[co][m][clsH + sh*th][clsW + sw*tw] that reach the class, zero from
// the class's cout*tapsH*tapsW on to kp (a multiple of 4). Mode 2 gathers
// these taps with one scalar load each; packed, igemm reads four of them
// in one 64-bit load pair, and a 32-row tile costs no more A loads per
// multiply-add than a 16-row one.
//
// One invocation writes one (class, m, co): its tapsH*tapsW taps, and for
// the last co the row's zero tail. Integer division is a scalar loop per
// lane on CPU devices, so the index is split once per taps elements
// instead of once per element. The grid is 2D (x up to groupsX
// workgroups) so large weights fit the device's grid limit.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { float w[]; };
layout(std430, binding = 1) writeonly buffer A { float a[]; };
layout(push_constant) uniform P { uint cout, cin, kh, kw, sh, sw, kp, groupsX; } p;
void main() {
    uint idx = (gl_WorkGroupID.y * p.groupsX + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    uint rows = p.sh * p.sw * p.cin;
    if (idx >= rows * p.cout) return;
    uint row = idx / p.cout, co = idx - row * p.cout;
    uint cls = row / p.cin, m = row - cls * p.cin;
    uint clsH = cls / p.sw, clsW = cls - clsH * p.sw;
    uint tapsH = clsH < p.kh ? (p.kh - clsH + p.sh - 1u) / p.sh : 0u;
    uint tapsW = clsW < p.kw ? (p.kw - clsW + p.sw - 1u) / p.sw : 0u;
    uint taps = tapsH * tapsW;
    uint dst = row * p.kp + co * taps;
    uint src = (co * p.cin + m) * p.kh * p.kw;
    for (uint th = 0u; th < tapsH; ++th) {
        for (uint tw = 0u; tw < tapsW; ++tw) {
            a[dst++] = w[src + (clsH + p.sh * th) * p.kw + clsW + p.sw * tw];
        }
    }
    if (co == p.cout - 1u) {
        for (uint k = p.cout * taps; k < p.kp; ++k) a[row * p.kp + k] = 0.0;
    }
}
