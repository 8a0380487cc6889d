#version 450
// pad: y[plane][i][j] = x[plane][i - ph][j - pw] inside x, 0 outside.
// y is [planes, hp, wp]; igemm's padded conv paths read it with aligned
// 64-bit loads and no bounds checks.
//
// One invocation copies one padded row. A workgroup per row (the earlier
// layout) left most of its lanes idle on the 18- to 66-wide rows of the
// DCGAN layers and paid lavapipe's per-workgroup cost hundreds of thousands
// of times a step; here one integer division per row (a scalar loop on CPU
// devices) is spread over the row's columns.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
// rows: padded rows in this dispatch, from plane planeBase on.
layout(push_constant) uniform P { uint h, w, hp, wp, ph, pw, planeBase, rows; } p;
void main() {
    uint r = gl_GlobalInvocationID.x;
    if (r >= p.rows) return;
    uint pl = r / p.hp;
    uint row = r - pl * p.hp;
    uint plane = pl + p.planeBase;
    int sy = int(row) - int(p.ph);
    bool rowIn = uint(sy) < p.h;
    uint dst = (plane * p.hp + row) * p.wp;
    uint src = rowIn ? (plane * p.h + uint(sy)) * p.w : 0u;
    for (uint col = 0; col < p.wp; ++col) {
        int sx = int(col) - int(p.pw);
        bool inside = rowIn && uint(sx) < p.w;
        float v = x[inside ? src + uint(sx) : 0u];
        y[dst + col] = inside ? v : 0.0;
    }
}
