#version 450
// to_bgra: paints n images (NCHW floats in [-1, 1], G's tanh output) as
// train.GridImage's grid (cols columns, a 2-pixel black border around and
// between cells) into a width x height buffer of BGRA8 pixels, one uint
// each (b | g<<8 | r<<16 | a<<24, the B8G8R8A8_UNORM swapchain layout).
// The grid (gw x gh pixels) is drawn into the rectangle (dx, dy, dw, dh)
// with nearest-neighbour sampling: window pixel x shows grid column
// (x - dx) * gw / dw (integer division), and likewise for rows; pixels
// outside the rectangle are black.
//
// A value becomes a byte by counting the thresholds it reaches: thr[j]
// (j = 1..255) is the smallest float32 that GridImage maps to j or more,
// computed on the host, so the bytes equal GridImage's exactly (NaN fails
// every comparison and becomes 0, as there).
//
// Four channels are premultiplied RGBA: each colour byte is clamped to the
// alpha byte and the pixel is drawn over a grey and white checkerboard
// (squares of size/8 image pixels, at least 1), so transparency shows.
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) readonly buffer Thr { float thr[]; };
layout(std430, binding = 2) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform P {
    uint width, height;
    uint n, channels, size, cols;
    uint gw, gh;
    uint dx, dy, dw, dh;
} p;

uint toByte(float v) {
    uint k = 0u;
    for (uint step = 128u; step > 0u; step >>= 1) {
        uint j = k + step;
        if (j <= 255u && v >= thr[j]) k = j;
    }
    return k;
}

void main() {
    uint x = gl_GlobalInvocationID.x, y = gl_GlobalInvocationID.y;
    if (x >= p.width || y >= p.height) return;
    uint px = 0xff000000u;
    if (x >= p.dx && x < p.dx + p.dw && y >= p.dy && y < p.dy + p.dh) {
        uint gx = (x - p.dx) * p.gw / p.dw, gy = (y - p.dy) * p.gh / p.dh;
        uint cell = p.size + 2u;
        uint cx = gx / cell, cy = gy / cell, ox = gx % cell, oy = gy % cell;
        uint k = cy * p.cols + cx;
        if (ox >= 2u && oy >= 2u && cx < p.cols && k < p.n) {
            uint plane = p.size * p.size;
            uint i = k * p.channels * plane + (oy - 2u) * p.size + (ox - 2u);
            uint r = toByte(src[i]);
            uint g = r, b = r;
            if (p.channels >= 3u) {
                g = toByte(src[i + plane]);
                b = toByte(src[i + 2u * plane]);
            }
            if (p.channels == 4u) {
                uint a = toByte(src[i + 3u * plane]);
                uint sq = max(p.size / 8u, 1u);
                uint bg = (((ox - 2u) / sq + (oy - 2u) / sq) & 1u) == 0u ? 255u : 204u;
                uint under = (255u - a) * bg;
                r = min(r, a) + (under + 127u) / 255u;
                g = min(g, a) + (under + 127u) / 255u;
                b = min(b, a) + (under + 127u) / 255u;
            }
            px = b | (g << 8) | (r << 16) | 0xff000000u;
        }
    }
    dst[y * p.width + x] = px;
}
