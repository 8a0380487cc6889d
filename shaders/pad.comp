#version 450
// pad: y[plane][i][j] = x[plane][i - ph][j - pw] inside x, 0 outside.
// y is [planes, hp, wp]; igemm's padded conv paths read it with aligned
// 64-bit loads and no bounds checks. With hp = h and no padding before the
// rows it is a GEMM operand copied with a wider row stride (spreadRows).
//
// One invocation copies one padded row. A workgroup per row (the earlier
// layout) left most of its lanes idle on the 18- to 66-wide rows of the
// DCGAN layers and paid lavapipe's per-workgroup cost hundreds of thousands
// of times a step; here one integer division per row (a scalar loop on CPU
// devices) is spread over the row's columns.
//
// The tex variant (CPU devices; w % 4 == 0, pw 0 or 1, wp % 4 == 0) reads
// x's row as RGBA32F texels and writes y as aligned vec4s: a texel fetch
// is one 16-byte load per lane where a storage-buffer load is a per-lane
// scalar loop, and lavapipe stores a vec4 in one pass of its per-lane
// store loop, so a row costs w/4 loads and wp/4 stores instead of w and wp.
// vkgan:variant tex -DTEX=1
#ifdef TEX
#extension GL_EXT_samplerless_texture_functions : require
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
#ifdef TEX
layout(std430, binding = 1) writeonly buffer Y { vec4 y[]; };
layout(binding = 2) uniform textureBuffer texX; // x as texels of 4 floats
#else
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
#endif
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
#ifdef TEX
    // Quad j is x[4j - 1 .. 4j + 2] of the row: with one column of padding
    // each texel's last float opens the next quad.
    uint d = dst >> 2, j = 0;
    if (rowIn && p.pw == 0) {
        // No column padding (a GEMM operand copied with a wider row
        // stride): each texel is a quad.
        for (; j < p.w / 4; ++j) y[d + j] = texelFetch(texX, int((src >> 2) + j));
    } else if (rowIn) {
        float prev = 0.0;
        for (; j < p.w / 4; ++j) {
            vec4 v = texelFetch(texX, int((src >> 2) + j));
            y[d + j] = vec4(prev, v.xyz);
            prev = v.w;
        }
        y[d + j] = vec4(prev, 0.0, 0.0, 0.0);
        j++;
    }
    for (; j < p.wp / 4; ++j) y[d + j] = vec4(0.0);
#else
    for (uint col = 0; col < p.wp; ++col) {
        int sx = int(col) - int(p.pw);
        bool inside = rowIn && uint(sx) < p.w;
        float v = x[inside ? src + uint(sx) : 0u];
        y[dst + col] = inside ? v : 0.0;
    }
#endif
}
