#version 450
// pad: y[plane][i][j] = x[plane][i - ph][j - pw] inside x, 0 outside.
// y is [planes, hp, wp]; igemm's padded conv paths read it with aligned
// 64-bit loads and no bounds checks. Grid: x covers a row four columns per
// invocation, y the rows, z the planes, so no index needs a division
// (integer division is a slow scalar loop on CPU devices).
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint h, w, hp, wp, ph, pw, planeBase; } p;
void main() {
    uint row = gl_WorkGroupID.y, plane = gl_WorkGroupID.z + p.planeBase;
    int sy = int(row) - int(p.ph);
    bool rowIn = uint(sy) < p.h;
    uint dst = (plane * p.hp + row) * p.wp;
    uint src = rowIn ? (plane * p.h + uint(sy)) * p.w : 0u;
    for (uint c = gl_LocalInvocationID.x * 4u; c < p.wp; c += gl_WorkGroupSize.x * 4u) {
        for (uint k = 0; k < 4u; ++k) {
            uint col = c + k;
            int sx = int(col) - int(p.pw);
            bool inside = rowIn && uint(sx) < p.w;
            float v = x[inside ? src + uint(sx) : 0u];
            if (col < p.wp) y[dst + col] = inside ? v : 0.0;
        }
    }
}
