#version 450
// bn_backward: batch-norm backward in training mode, one workgroup per
// channel. Pass 1 sums dy and dy*xhat per lane, merged in a shared-memory
// tree; pass 2 writes dx = gamma*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)).
// The COLS variant (batch norm 1d with few rows) gives each lane a channel,
// as in bn_train.
// Specialization constant ACT takes dy through the activation fused into
// bn_train.comp first (0 none, 1 ReLU, 2 LeakyReLU(slope), as act_bwd.comp
// does), with the sign of the pre-activation recomputed from x by
// bn_train.comp's expression: that saves act_bwd's pass over dy and y.
// vkgan:variant w2 -DWIDE=1
// vkgan:variant cols -DCOLS=1
#ifdef WIDE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
#define WG 64
layout(local_size_x = WG) in;
layout(constant_id = 0) const uint ACT = 0u;
#ifdef WIDE
// Float pairs in 64-bit words halve the per-lane loads on lavapipe (HW even).
layout(std430, binding = 0) writeonly buffer DX { uint64_t dx[]; };
layout(std430, binding = 3) readonly buffer DY { uint64_t dy[]; };
layout(std430, binding = 4) readonly buffer X { uint64_t x[]; };
#define LOAD(buf, i) uintBitsToFloat(unpackUint2x32(buf[i]))
#define VAL vec2
#else
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 3) readonly buffer DY { float dy[]; };
layout(std430, binding = 4) readonly buffer X { float x[]; };
#define LOAD(buf, i) buf[i]
#define VAL float
#endif
layout(std430, binding = 1) writeonly buffer DG { float dgamma[]; };
layout(std430, binding = 2) writeonly buffer DB { float dbeta[]; };
layout(std430, binding = 5) readonly buffer G { float gamma[]; };
layout(std430, binding = 6) readonly buffer SM { float saveMean[]; };
layout(std430, binding = 7) readonly buffer SI { float saveInvStd[]; };
layout(std430, binding = 8) readonly buffer Bt { float beta[]; }; // read with ACT only
// hw counts words per plane (floats, or float pairs with WIDE); count is
// the number of floats per channel.
layout(push_constant) uniform P { uint n; uint c; uint hw; float count; float slope; } p;

// g through the activation at pre-activation z.
float actGrad(float g, float z) {
    if (ACT == 1u) return z > 0.0 ? g : 0.0;
    if (ACT == 2u) return z > 0.0 ? g : p.slope * g;
    return g;
}
vec2 actGrad(vec2 g, vec2 z) { return vec2(actGrad(g.x, z.x), actGrad(g.y, z.y)); }

#ifdef COLS
void main() {
    uint ch = gl_GlobalInvocationID.x;
    if (ch >= p.c) return;
    float mu = saveMean[ch], invstd = saveInvStd[ch];
    float scale = ACT != 0u ? invstd * gamma[ch] : 0.0, shift = ACT != 0u ? beta[ch] : 0.0;
    float db = 0.0, dyx = 0.0;
    for (uint n = 0u; n < p.n; n++) {
        uint i = n * p.c + ch;
        float xv = x[i];
        float g = actGrad(dy[i], (xv - mu) * scale + shift);
        db += g;
        dyx += g * (xv - mu);
    }
    float dg = dyx * invstd;
    float k = gamma[ch] * invstd;
    float meanDy = db / p.count, meanDyx = dg / p.count;
    for (uint n = 0u; n < p.n; n++) {
        uint i = n * p.c + ch;
        float xv = x[i];
        float xhat = (xv - mu) * invstd;
        dx[i] = k * (actGrad(dy[i], (xv - mu) * scale + shift) - meanDy - xhat * meanDyx);
    }
    dgamma[ch] = dg;
    dbeta[ch] = db;
}
#else
// As in bn_train.comp, each of the 64 lanes sums for four of the 256 lanes
// whose sums the tree merges (lid, lid+64, lid+128, lid+192) and adds its
// own four as the tree's first two levels would: the same bits, a quarter
// of the subgroups and two barriers fewer.
const uint SPAN = 256u;
shared float sDy[WG], sDyx[WG];

// Lane `lane` of the 256: sums of dy and dy*(x - mean) over every SPAN-th
// value from the lane-th.
void laneSums(uint lane, uint plane, uint off, float mu, float scale, float shift, out float sumDy, out float sumDyx) {
    uint hw = p.hw;
    uint stepN = SPAN / hw, stepS = SPAN % hw;
    sumDy = 0.0;
    sumDyx = 0.0;
    uint s = lane % hw;
    for (uint n = lane / hw; n < p.n;) {
        uint i = n * plane + off + s;
        VAL xv = LOAD(x, i);
        VAL g = actGrad(LOAD(dy, i), (xv - mu) * scale + shift);
        VAL gx = g * (xv - mu);
#ifdef WIDE
        sumDy += g.x + g.y;
        sumDyx += gx.x + gx.y;
#else
        sumDy += g;
        sumDyx += gx;
#endif
        s += stepS;
        n += stepN;
        if (s >= hw) { s -= hw; n++; }
    }
}

void main() {
    uint ch = gl_WorkGroupID.x;
    uint lid = gl_LocalInvocationID.x;
    uint hw = p.hw, plane = p.c * hw, off = ch * hw;
    float mu = saveMean[ch], invstd = saveInvStd[ch];
    float scale = ACT != 0u ? invstd * gamma[ch] : 0.0, shift = ACT != 0u ? beta[ch] : 0.0;
    // precise: NIR would otherwise factor invstd out of dyx0*invstd +
    // dyx2*invstd, which the tree (through shared memory) never did.
    precise float dy0, dyx0, dy1, dyx1, dy2, dyx2, dy3, dyx3;
    laneSums(lid, plane, off, mu, scale, shift, dy0, dyx0);
    laneSums(lid + WG, plane, off, mu, scale, shift, dy1, dyx1);
    laneSums(lid + 2u * WG, plane, off, mu, scale, shift, dy2, dyx2);
    laneSums(lid + 3u * WG, plane, off, mu, scale, shift, dy3, dyx3);
    dyx0 *= invstd;
    dyx1 *= invstd;
    dyx2 *= invstd;
    dyx3 *= invstd;
    dy0 += dy2; // the tree's level 128
    dyx0 += dyx2;
    dy1 += dy3;
    dyx1 += dyx3;
    dy0 += dy1; // level 64
    dyx0 += dyx1;
    sDy[lid] = dy0;
    sDyx[lid] = dyx0;
    barrier();
    for (uint st = WG / 2; st > 0; st >>= 1) {
        if (lid < st) {
            sDy[lid] += sDy[lid + st];
            sDyx[lid] += sDyx[lid + st];
        }
        barrier();
    }
    float db = sDy[0], dg = sDyx[0];
    float k = gamma[ch] * invstd;
    float meanDy = db / p.count, meanDyx = dg / p.count;
    uint stepN = WG / hw, stepS = WG % hw;
    uint s = lid % hw;
    for (uint n = lid / hw; n < p.n;) {
        uint i = n * plane + off + s;
        VAL xv = LOAD(x, i);
        VAL xhat = (xv - mu) * invstd;
        VAL r = k * (actGrad(LOAD(dy, i), (xv - mu) * scale + shift) - meanDy - xhat * meanDyx);
#ifdef WIDE
        dx[i] = packUint2x32(floatBitsToUint(r));
#else
        dx[i] = r;
#endif
        s += stepS;
        n += stepN;
        if (s >= hw) { s -= hw; n++; }
    }
    if (lid == 0) {
        dgamma[ch] = dg;
        dbeta[ch] = db;
    }
}
#endif
