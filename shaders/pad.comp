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
// The tex variant (CPU devices; w % 4 == 0, pw 0 or 1, wp even) reads x's
// row as RGBA32F texels and writes y as float pairs in 64-bit words: a
// texel fetch is one 16-byte load per lane where a storage-buffer load is a
// per-lane scalar loop, so a row costs w/4 loads and wp/2 stores instead
// of w and wp.
// vkgan:variant tex -DTEX=1
#ifdef TEX
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
#ifdef TEX
layout(std430, binding = 1) writeonly buffer Y { uint64_t y[]; };
layout(binding = 2) uniform textureBuffer texX; // x as texels of 4 floats
#else
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
#endif
// rows: padded rows in this dispatch, from plane planeBase on.
layout(push_constant) uniform P { uint h, w, hp, wp, ph, pw, planeBase, rows; } p;

#ifdef TEX
uint64_t pair(float a, float b) { return packUint2x32(uvec2(floatBitsToUint(a), floatBitsToUint(b))); }
#endif

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
    // Pair j is (x[2j - 1], x[2j]) of the row: with one column of padding
    // each texel's last float opens the next pair.
    uint d = dst >> 1, j = 0;
    if (rowIn && p.pw == 0) {
        // No column padding (a GEMM operand copied with a wider row
        // stride): each texel is two whole pairs.
        for (uint t = 0; t < p.w / 4; ++t) {
            vec4 v = texelFetch(texX, int((src >> 2) + t));
            y[d + j] = pair(v.x, v.y);
            y[d + j + 1] = pair(v.z, v.w);
            j += 2;
        }
    } else if (rowIn) {
        float prev = 0.0;
        for (uint t = 0; t < p.w / 4; ++t) {
            vec4 v = texelFetch(texX, int((src >> 2) + t));
            y[d + j] = pair(prev, v.x);
            y[d + j + 1] = pair(v.y, v.z);
            prev = v.w;
            j += 2;
        }
        y[d + j] = pair(prev, 0.0);
        j++;
    }
    for (; j < p.wp / 2; ++j) y[d + j] = 0ul;
#else
    for (uint col = 0; col < p.wp; ++col) {
        int sx = int(col) - int(p.pw);
        bool inside = rowIn && uint(sx) < p.w;
        float v = x[inside ? src + uint(sx) : 0u];
        y[dst + col] = inside ? v : 0.0;
    }
#endif
}
