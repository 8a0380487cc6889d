// act.glsl: the activations of act_fwd.comp and act_bwd.comp, and the
// GEMM epilogues that fuse them (igemm, igemm_tiled, igemm_reduce). Not a
// kernel (gen.go compiles *.comp only): #included. op: 0 ReLU,
// 1 LeakyReLU(slope), 2 tanh, 3 sigmoid (engine/elementwise.go's ewReLU..).

// Tanh without the inf/inf of (e^2x-1)/(e^2x+1): for |x| >= 0.25 use
// (1-t)/(1+t) with t = e^-2|x| in (0, 0.61], which cannot overflow and keeps
// 1-t well away from cancellation; below that a Taylor series (its first
// omitted term is under 1e-8 relative).
float safeTanh(float v) {
    float a = abs(v);
    if (a < 0.25) {
        float v2 = v * v;
        return v + v * v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 + v2 * (-17.0 / 315.0 + v2 * (62.0 / 2835.0))));
    }
    float t = exp(-2.0 * a);
    return sign(v) * (1.0 - t) / (1.0 + t);
}

// Sigmoid from e^-|x| in (0, 1], so exp never overflows.
float safeSigmoid(float v) {
    float t = exp(-abs(v));
    return v >= 0.0 ? 1.0 / (1.0 + t) : t / (1.0 + t);
}

float actOf(uint op, float v, float slope) {
    if (op == 0u) return max(v, 0.0);
    if (op == 1u) return v > 0.0 ? v : slope * v;
    if (op == 2u) return safeTanh(v);
    return safeSigmoid(v);
}

// actGrad is g times the derivative at s: the forward input for ReLU and
// LeakyReLU, the forward output for tanh and sigmoid (f' is 1-s^2 and
// s(1-s)). For ReLU and LeakyReLU with slope >= 0 the output has the
// input's sign, so either serves.
float actGrad(uint op, float g, float s, float slope) {
    if (op == 0u) return s > 0.0 ? g : 0.0;
    if (op == 1u) return s > 0.0 ? g : slope * g;
    if (op == 2u) return g * (1.0 - s * s);
    return g * s * (1.0 - s);
}

// The GEMM epilogues' activation field: epi bits 2-4 hold op + 1 (0: none),
// applied to each output after alpha, beta, bias and bits 0-1; with bit 5
// the output is instead multiplied by op's derivative at the same element
// of the bias binding (the activation's saved output: the input gradient
// of the layer after an in-place activation).
const uint EPI_GRAD = 32u;

uint epiAct(uint epi) { return (epi >> 2) & 7u; }

// epiActivate applies epi's activation field to v, whose saved activation
// output (read only with EPI_GRAD) is s.
float epiActivate(uint epi, float v, float s, float slope) {
    uint a = epiAct(epi);
    if (a == 0u) return v;
    if ((epi & EPI_GRAD) != 0u) return actGrad(a - 1u, v, s, slope);
    return actOf(a - 1u, v, slope);
}
