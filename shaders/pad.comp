#version 450
// pad: y[plane][i][j] = x[plane][i - ph][j - pw] inside x, 0 outside.
// y is [planes, hp, wp]; igemm's padded conv paths read it with aligned
// 64-bit loads and no bounds checks.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint total, h, w, hp, wp, ph, pw; } p;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint hpwp = p.hp * p.wp;
    for (uint i = gl_GlobalInvocationID.x; i < p.total; i += stride) {
        uint plane = i / hpwp, r = i - plane * hpwp;
        uint row = r / p.wp, col = r - row * p.wp;
        int sy = int(row) - int(p.ph), sx = int(col) - int(p.pw);
        bool inside = uint(sy) < p.h && uint(sx) < p.w;
        uint src = inside ? (plane * p.h + uint(sy)) * p.w + uint(sx) : 0u;
        float v = x[src];
        y[i] = inside ? v : 0.0;
    }
}
