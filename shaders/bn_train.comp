#version 450
// bn_train: batch-norm forward in training mode, one workgroup per channel.
// Pass 1 folds the channel's N*HW values into per-lane (count, mean, M2)
// triples, merged in a shared-memory tree with Chan's formula; pass 2
// normalises. x is read twice and y written once: on lavapipe loads are the
// cost, and a channel is too large to keep in registers.
// The COLS variant is for [N,C] with few rows (batch norm 1d): a lane per
// channel walks the rows, so there is no reduction tree and its barriers,
// and one workgroup serves 64 channels (lavapipe pays per workgroup and per
// barrier; a GPU gets coalesced rows).
// Specialization constant ACT fuses the activation that follows the batch
// norm in the DCGAN into pass 2 (0 none, 1 ReLU, 2 LeakyReLU(slope), each
// computed as act_fwd.comp does), saving a pass over y.
// vkgan:variant w2 -DWIDE=1
// vkgan:variant cols -DCOLS=1
#ifdef WIDE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
#define WG 64
layout(local_size_x = WG) in;
layout(constant_id = 0) const uint ACT = 0u;
#ifdef WIDE
// Two floats per 64-bit word: every load on lavapipe is a per-lane scalar
// loop, so this halves the loads. The host uses it only when HW is even, so
// a word never crosses a channel plane.
layout(std430, binding = 0) writeonly buffer Y { uint64_t y[]; };
layout(std430, binding = 1) readonly buffer X { uint64_t x[]; };
#else
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 2) readonly buffer G { float gamma[]; };
layout(std430, binding = 3) readonly buffer B { float beta[]; };
layout(std430, binding = 4) buffer RM { float runMean[]; };
layout(std430, binding = 5) buffer RV { float runVar[]; };
layout(std430, binding = 6) writeonly buffer SM { float saveMean[]; };
layout(std430, binding = 7) writeonly buffer SI { float saveInvStd[]; };
// hw counts words per plane (floats, or float pairs with WIDE).
layout(push_constant) uniform P { uint n; uint c; uint hw; float momentum; float eps; float slope; } p;

float act(float v) {
    if (ACT == 1u) return max(v, 0.0);
    if (ACT == 2u) return v > 0.0 ? v : p.slope * v;
    return v;
}
vec2 act(vec2 v) { return vec2(act(v.x), act(v.y)); }

#ifdef COLS
void main() {
    uint ch = gl_GlobalInvocationID.x;
    if (ch >= p.c) return;
    // Shifted sums as below, with the channel's first value as the shift.
    float k = x[ch], sum = 0.0, sumSq = 0.0;
    for (uint n = 0u; n < p.n; n++) {
        float v = x[n * p.c + ch] - k;
        sum += v;
        sumSq += v * v;
    }
    float total = float(p.n);
    float m = sum / total;
    float sq = max(sumSq - sum * m, 0.0);
    float mu = m + k;
    float var = sq / total;
    float invstd = inversesqrt(var + p.eps);
    float scale = invstd * gamma[ch], shift = beta[ch];
    for (uint n = 0u; n < p.n; n++) {
        uint i = n * p.c + ch;
        y[i] = act((x[i] - mu) * scale + shift);
    }
    saveMean[ch] = mu;
    saveInvStd[ch] = invstd;
    float unbiased = total > 1.0 ? sq / (total - 1.0) : var;
    runMean[ch] = (1.0 - p.momentum) * runMean[ch] + p.momentum * mu;
    runVar[ch] = (1.0 - p.momentum) * runVar[ch] + p.momentum * unbiased;
}
#else
// The statistics are merged as if 256 lanes had each summed every 256th
// value of the channel: four (count, mean, M2) triples a lane, for lanes
// lid, lid+64, lid+128 and lid+192, then the tree. The first two levels of
// the tree merge a lane's own triples, without a barrier. So the results
// keep the bits of the 256-lane workgroup this replaced (a checkpoint
// written before still resumes bit for bit), while lavapipe, which runs a
// workgroup's subgroups one after another and switches between them at
// every barrier, runs 8 of them where it ran 32, through 7 barriers instead
// of 9: per channel that was about 11 us, so the channels of G's 4x4 and
// D's 8x8 layers cost more than their values.
const uint SPAN = 256u;
shared float sCnt[WG], sMean[WG], sM2[WG];

// Lane `lane` of the 256: sums of x - k and (x - k)^2 over every SPAN-th
// value from the lane-th, with k the first of them (shifted data: no
// cancellation while k is a sample of the channel, and no division per
// element as in Welford), as (count, mean, M2).
void laneStats(uint lane, uint plane, uint off, out float cnt, out float mean, out float m2) {
    uint hw = p.hw;
    // (sample n, offset s) stepped without a division per element.
    uint stepN = SPAN / hw, stepS = SPAN % hw;
    float sum = 0.0, sumSq = 0.0, k = 0.0;
    cnt = 0.0;
    uint s = lane % hw;
    uint n = lane / hw;
    if (n < p.n) {
#ifdef WIDE
        k = uintBitsToFloat(unpackUint2x32(x[n * plane + off + s])).x;
#else
        k = x[n * plane + off + s];
#endif
    }
    for (; n < p.n;) {
#ifdef WIDE
        vec2 v = uintBitsToFloat(unpackUint2x32(x[n * plane + off + s])) - k;
        sum += v.x + v.y;
        sumSq += v.x * v.x + v.y * v.y;
        cnt += 2.0;
#else
        float v = x[n * plane + off + s] - k;
        sum += v;
        sumSq += v * v;
        cnt += 1.0;
#endif
        s += stepS;
        n += stepN;
        if (s >= hw) { s -= hw; n++; }
    }
    mean = cnt > 0.0 ? sum / cnt : 0.0;
    m2 = cnt > 0.0 ? max(sumSq - sum * mean, 0.0) : 0.0;
    mean += k;
}

// Chan's merge of triple b into a, skipped when b is empty.
void merge(inout float na, inout float ma, inout float m2a, float nb, float mb, float m2b) {
    if (nb > 0.0) {
        float nab = na + nb;
        float d = mb - ma;
        ma += d * (nb / nab);
        m2a += m2b + d * d * (na / nab) * nb;
        na = nab;
    }
}

void main() {
    uint ch = gl_WorkGroupID.x;
    uint lid = gl_LocalInvocationID.x;
    uint hw = p.hw, plane = p.c * hw, off = ch * hw;
    float c0, m0, q0, c1, m1, q1, c2, m2, q2, c3, m3, q3;
    laneStats(lid, plane, off, c0, m0, q0);
    laneStats(lid + WG, plane, off, c1, m1, q1);
    laneStats(lid + 2u * WG, plane, off, c2, m2, q2);
    laneStats(lid + 3u * WG, plane, off, c3, m3, q3);
    merge(c0, m0, q0, c2, m2, q2); // the tree's level 128
    merge(c1, m1, q1, c3, m3, q3);
    merge(c0, m0, q0, c1, m1, q1); // level 64
    sCnt[lid] = c0;
    sMean[lid] = m0;
    sM2[lid] = q0;
    barrier();
    for (uint st = WG / 2; st > 0; st >>= 1) {
        if (lid < st) merge(sCnt[lid], sMean[lid], sM2[lid], sCnt[lid + st], sMean[lid + st], sM2[lid + st]);
        barrier();
    }
    float total = sCnt[0], mu = sMean[0], sq = max(sM2[0], 0.0);
    float var = sq / total;
    float invstd = inversesqrt(var + p.eps);
    float scale = invstd * gamma[ch], shift = beta[ch];
    uint stepN = WG / hw, stepS = WG % hw;
    uint s = lid % hw;
    for (uint n = lid / hw; n < p.n;) {
        uint i = n * plane + off + s;
#ifdef WIDE
        vec2 v = uintBitsToFloat(unpackUint2x32(x[i]));
        y[i] = packUint2x32(floatBitsToUint(act((v - mu) * scale + shift)));
#else
        y[i] = act((x[i] - mu) * scale + shift);
#endif
        s += stepS;
        n += stepN;
        if (s >= hw) { s -= hw; n++; }
    }
    if (lid == 0) {
        saveMean[ch] = mu;
        saveInvStd[ch] = invstd;
        // One value per channel has no unbiased variance (PyTorch divides
        // by zero); the biased one (0) keeps the running estimate finite.
        float unbiased = total > 1.0 ? sq / (total - 1.0) : var;
        runMean[ch] = (1.0 - p.momentum) * runMean[ch] + p.momentum * mu;
        runVar[ch] = (1.0 - p.momentum) * runVar[ch] + p.momentum * unbiased;
    }
}
#endif
