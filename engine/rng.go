package engine

import (
	"fmt"
	"math"

	"vkgan/shaders"
)

// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC 2011) keyed by the 64-bit seed,
// with counter (q, step, 0, 0) giving the four words for elements 4q..4q+3.
// An element's value depends only on (seed, step, index), so any batch can
// be reproduced from the seed and step alone, and a recording replayed
// after r.Increment(step) draws the next batch.
//
// Each 32-bit word w becomes u = ((w>>9) + 0.5) / 2^23, exact in float32
// and strictly inside (0, 1). Uniform values are lo + (hi-lo)*u. Normal
// values use Box-Muller on word pairs (x,y) and (z,w): r = sqrt(-2 ln u1),
// giving r*cos(2 pi u2) and r*sin(2 pi u2); u1 > 0 keeps the log finite.

// Distributions: specialization constant 0 of the rng kernel.
const (
	rngUniform uint32 = iota
	rngNormal
	rngAddAnnealed
)

// RandUniform fills x with values uniform in [lo, hi] drawn from (seed,
// the value of the device counter step). step is a counter made by
// NewCounter.
func (r *Recorder) RandUniform(x *Tensor, seed uint64, step *Counter, lo, hi float32) error {
	if err := ewFinite("rand uniform", "lo", lo); err != nil {
		return r.fail(err)
	}
	if err := ewFinite("rand uniform", "hi", hi); err != nil {
		return r.fail(err)
	}
	if !(lo <= hi) {
		return r.fail(fmt.Errorf("engine: rand uniform: lo %g > hi %g", lo, hi))
	}
	return r.rand("rand uniform", rngUniform, x, seed, step, 0, lo, hi)
}

// RandNormal fills x with normal values of the given mean and standard
// deviation (std >= 0) drawn from (seed, the value of counter step).
func (r *Recorder) RandNormal(x *Tensor, seed uint64, step *Counter, mean, std float32) error {
	if err := ewFinite("rand normal", "mean", mean); err != nil {
		return r.fail(err)
	}
	if err := ewFinite("rand normal", "std", std); err != nil {
		return r.fail(err)
	}
	if std < 0 {
		return r.fail(fmt.Errorf("engine: rand normal: std %g is negative", std))
	}
	return r.rand("rand normal", rngNormal, x, seed, step, 0, mean, std)
}

// RandNormalAt fills x with elements offset.. of the stream RandNormal
// draws for a tensor of offset+x's size: a data-parallel rank's shard
// of the global batch's noise (RandNormal is RandNormalAt at 0).
func (r *Recorder) RandNormalAt(x *Tensor, seed uint64, step *Counter, offset int, mean, std float32) error {
	if err := ewFinite("rand normal", "mean", mean); err != nil {
		return r.fail(err)
	}
	if err := ewFinite("rand normal", "std", std); err != nil {
		return r.fail(err)
	}
	if std < 0 {
		return r.fail(fmt.Errorf("engine: rand normal: std %g is negative", std))
	}
	return r.rand("rand normal", rngNormal, x, seed, step, offset, mean, std)
}

// AddAnnealedNoise adds normal noise to x whose standard deviation falls
// linearly with the device counter step, std*max(0, 1 - t/until) at t =
// the counter's value: annealed instance noise (Sønderby et al. 2016), which
// smooths D's view of the data early in training. The draws are those of
// RandNormal with the same seed and step.
func (r *Recorder) AddAnnealedNoise(x *Tensor, seed uint64, step *Counter, std float32, until int) error {
	return r.addAnnealedNoise(x, seed, step, 0, std, until)
}

// addAnnealedNoise adds elements offset.. of AddAnnealedNoise's stream.
func (r *Recorder) addAnnealedNoise(x *Tensor, seed uint64, step *Counter, offset int, std float32, until int) error {
	const op = "annealed noise"
	if err := ewFinite(op, "std", std); err != nil {
		return r.fail(err)
	}
	if std < 0 || until < 1 || until > 1<<24 {
		return r.fail(fmt.Errorf("engine: %s: std %g must be >= 0 and the last step %d in 1..2^24", op, std, until))
	}
	return r.rand(op, rngAddAnnealed, x, seed, step, offset, std, float32(until))
}

func (r *Recorder) rand(op string, dist uint32, x *Tensor, seed uint64, step *Counter, offset int, a, b float32) error {
	if err := ewCheck(op, []string{"x", "step"}, x, step.tensor()); err != nil {
		return r.fail(err)
	}
	// Element indices are uint32 on the device.
	if offset < 0 || int64(offset)+int64(x.n)+3 > math.MaxUint32 {
		return r.fail(fmt.Errorf("engine: %s: offset %d for %d elements is outside the stream's 2^32", op, offset, x.n))
	}
	quads := (offset+x.n+3)/4 - offset/4
	push := shaders.RngPush{N: uint32(x.n), SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), A: a, B: b, Offset: uint32(offset)}
	return dispatch(r, shaders.Rng, []uint32{dist}, r.ewGroups(quads), push, x, step.t)
}
