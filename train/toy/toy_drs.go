package toy

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"

	"vkgan/engine"
)

// drsCandidatesPerSample is how many of G's samples rejection sampling
// draws for each sample it evaluates. With an acceptance rate above 10%
// (a D near equilibrium gives far more) it keeps the full count.
const drsCandidatesPerSample = 10

// drsSeed keys the acceptance draws apart from every other stream of a run.
const drsSeed = 0x6472732d746f7921

// DRS is toy.json's "drs": the metrics of G's samples filtered by
// discriminator rejection sampling.
type DRS struct {
	Candidates     int      `json:"candidates"`
	Accepted       int      `json:"accepted"`     // of all candidates
	AcceptPct      float64  `json:"accept_pct"`   // 100 x accepted / candidates
	MaxLogit       float64  `json:"max_logit"`    // the bound M of the acceptance rule
	Samples        int      `json:"eval_samples"` // the first accepted ones, measured below
	Modes          int      `json:"modes"`        // as the unfiltered metrics
	HighQualityPct float64  `json:"high_quality_pct"`
	ReverseKL      *float64 `json:"reverse_kl"`
	PerMode        []int    `json:"hq_per_mode"`
	Frame          string   `json:"frame"`
}

// rejectionSample keeps candidate i (xy[2i], xy[2i+1]) with probability
// exp(logits[i] - M), M the largest logit, and returns the kept points in
// order. D at its optimum is p_data / (p_data + p_G), so its logit is
// log(p_data / p_G) and the kept points follow p_data wherever G puts
// mass (Azadi et al., "Discriminator Rejection Sampling", 2019, in its
// plain form, without their shift of the acceptance curve).
func rejectionSample(xy, logits []float32, rng *rand.Rand) (kept []float32, maxLogit float64, err error) {
	if len(xy) != 2*len(logits) {
		return nil, 0, fmt.Errorf("train: toy: rejection sampling: %d coordinates for %d logits", len(xy), len(logits))
	}
	maxLogit = math.Inf(-1)
	for i, l := range logits {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			return nil, 0, fmt.Errorf("train: toy: rejection sampling: D's logit at candidate %d is %g", i, l)
		}
		maxLogit = max(maxLogit, float64(l))
	}
	for i, l := range logits {
		if rng.Float64() < math.Exp(float64(l)-maxLogit) {
			kept = append(kept, xy[2*i], xy[2*i+1])
		}
	}
	return kept, maxLogit, nil
}

// evalDRS draws drsCandidatesPerSample x n samples from G, filters them
// by D and measures the first n kept ones; it also draws them on D's
// field as frames/drs.png and returns that picture.
func evalDRS(g *engine.ToyGAN, mix Mixture, drawer *toyDrawer, seed uint64, n int, out string) (*DRS, []float32, image.Image, error) {
	cand, err := g.Sample(drsCandidatesPerSample * n)
	if err != nil {
		return nil, nil, nil, err
	}
	logits, err := g.Logits(cand)
	if err != nil {
		return nil, nil, nil, err
	}
	kept, maxLogit, err := rejectionSample(cand, logits, rand.New(rand.NewPCG(seed, drsSeed)))
	if err != nil {
		return nil, nil, nil, err
	}
	res := &DRS{Candidates: len(logits), Accepted: len(kept) / 2, MaxLogit: math.Round(maxLogit*1e4) / 1e4}
	res.AcceptPct = round2(100 * float64(res.Accepted) / float64(res.Candidates))
	kept = kept[:2*min(n, res.Accepted)]
	st := mix.MeasureModes(kept)
	res.Samples, res.Modes, res.HighQualityPct, res.PerMode = st.Samples, st.Modes, round2(st.HQPercent), st.PerMode
	if !math.IsNaN(st.ReverseKL) {
		kl := math.Round(st.ReverseKL*1e4) / 1e4
		res.ReverseKL = &kl
	}
	field, err := g.Field(drawer.gridPoints())
	if err != nil {
		return nil, nil, nil, err
	}
	res.Frame = filepath.Join(out, "frames", "drs.png")
	img := drawer.draw(field, kept)
	if err := writePNG(res.Frame, img); err != nil {
		return nil, nil, nil, err
	}
	return res, kept, img, nil
}
