#version 450
// copy_cols: dst[r*ldd + d0 + j] = src[r*lds + s0 + j] for r < rows and
// j < w: a block of columns from one row-major matrix into another. It
// concatenates and splits along the last axis (the class embedding's
// [z, E[y]] and its gradient), which the GEMM cannot, since it writes
// only dense rows. Grid: x covers the columns, y the rows (grid-stride
// in both), so no index needs a division.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer D { float dst[]; };
layout(std430, binding = 1) readonly buffer S { float src[]; };
layout(push_constant) uniform P { uint rows, w, lds, s0, ldd, d0; } p;
void main() {
    uint cstride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint r = gl_WorkGroupID.y; r < p.rows; r += gl_NumWorkGroups.y) {
        for (uint j = gl_GlobalInvocationID.x; j < p.w; j += cstride) {
            dst[r * p.ldd + p.d0 + j] = src[r * p.lds + p.s0 + j];
        }
    }
}
