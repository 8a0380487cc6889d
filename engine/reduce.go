package engine

import (
	"fmt"

	"vkgan/shaders"
)

// Sum and Mean run as ONE dispatch of ONE workgroup (256 lanes): each lane
// keeps a Kahan-compensated sum of a strided slice of x, then the lanes
// meet in a shared-memory tree. Why one workgroup:
//   - a multi-workgroup reduction needs somewhere to put per-workgroup
//     partials (and, for a one-dispatch "last workgroup finishes" design, an
//     atomic counter). Out has one element and the engine has no per-device
//     scratch, so that would mean a hidden allocation whose lifetime must
//     outlive every replay of the recording, with no hook to free it;
//   - the order of additions is fixed, so the result is bit-identical on
//     every replay (atomics would not be);
//   - the engine's own reductions are small (losses and D(x) means over a
//     batch); a 1M-element sum still takes about a millisecond on lavapipe.
// Compensated lanes make the error independent of n to first order
// (relative ~1e-7 on 1e6 values), well inside the 1e-5 asked for.

// Sum records out[0] = sum of every element of x. out has one element.
func (r *Recorder) Sum(out, x *Tensor) error { return r.reduce("sum", out, x, 1) }

// Mean records out[0] = mean of the elements of x. out has one element.
func (r *Recorder) Mean(out, x *Tensor) error {
	if x == nil {
		return r.reduce("mean", out, x, 1)
	}
	return r.reduce("mean", out, x, float32(1/float64(x.n)))
}

func (r *Recorder) reduce(op string, out, x *Tensor, scale float32) error {
	if err := ewCheck(op, []string{"out", "x"}, out, x); err != nil {
		return r.fail(err)
	}
	if out.n != 1 {
		return r.fail(fmt.Errorf("engine: %s: out %v has %d elements, want 1", op, out.shape, out.n))
	}
	return dispatch(r, shaders.ReduceSum, nil, [3]uint32{1, 1, 1}, shaders.ReduceSumPush{N: uint32(x.n), Scale: scale}, out, x)
}
