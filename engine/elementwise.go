package engine

import (
	"fmt"
	"math"

	"vkgan/shaders"
)

// Elementwise kernels (scale, axpy, bias, activations) are grid-stride
// loops over a flat index with 256 invocations per workgroup: on lavapipe
// their cost is one per-lane load per operand element, so each kernel reads
// each operand once and computes in registers.

// ewCheck reports the first nil tensor among ts, named by names.
func ewCheck(op string, names []string, ts ...*Tensor) error {
	for i, t := range ts {
		if t == nil || t.buf == nil {
			return fmt.Errorf("engine: %s: %s is nil or released", op, names[i])
		}
	}
	return nil
}

// ewSameLen checks that b has as many elements as a.
func ewSameLen(op, an, bn string, a, b *Tensor) error {
	if a.n != b.n {
		return fmt.Errorf("engine: %s: %s %v has %d elements, %s %v has %d", op, an, a.shape, a.n, bn, b.shape, b.n)
	}
	return nil
}

func ewFinite(op, name string, v float32) error {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return fmt.Errorf("engine: %s: %s is %g, want a finite value", op, name, v)
	}
	return nil
}

// Scale records x *= a in place.
func (r *Recorder) Scale(x *Tensor, a float32) error {
	if err := ewCheck("scale", []string{"x"}, x); err != nil {
		return r.fail(err)
	}
	if err := ewFinite("scale", "factor", a); err != nil {
		return r.fail(err)
	}
	return dispatch(r, shaders.Scale, nil, r.ewGroups(x.n), shaders.ScalePush{N: uint32(x.n), A: a}, x)
}

// Axpy records y += a*x; x and y have the same number of elements (their
// shapes may differ).
func (r *Recorder) Axpy(y, x *Tensor, a float32) error {
	if err := ewCheck("axpy", []string{"y", "x"}, y, x); err != nil {
		return r.fail(err)
	}
	if err := ewSameLen("axpy", "y", "x", y, x); err != nil {
		return r.fail(err)
	}
	if err := ewFinite("axpy", "factor", a); err != nil {
		return r.fail(err)
	}
	return dispatch(r, shaders.Axpy, nil, r.ewGroups(y.n), shaders.AxpyPush{N: uint32(y.n), A: a}, y, x)
}

// biasShape checks that t has rank >= 2 and bias has t's dim-1 size, and
// returns (batch, channels, inner) with inner the product of dims 2..
func biasShape(op, tn string, t, bias *Tensor) (batch, c, inner int, err error) {
	if len(t.shape) < 2 {
		return 0, 0, 0, fmt.Errorf("engine: %s: %s %v needs rank >= 2 ([N,C] or [N,C,H,W])", op, tn, t.shape)
	}
	c = t.shape[1]
	if bias.n != c {
		return 0, 0, 0, fmt.Errorf("engine: %s: bias has %d elements, want %d (dim 1 of %s %v)", op, bias.n, c, tn, t.shape)
	}
	return t.shape[0], c, t.n / (t.shape[0] * c), nil
}

// BiasAdd records y[n,c,...] += bias[c] in place. y has rank >= 2 with the
// channel in dimension 1; bias has C elements.
func (r *Recorder) BiasAdd(y, bias *Tensor) error {
	if err := ewCheck("bias add", []string{"y", "bias"}, y, bias); err != nil {
		return r.fail(err)
	}
	_, c, inner, err := biasShape("bias add", "y", y, bias)
	if err != nil {
		return r.fail(err)
	}
	push := shaders.BiasAddPush{N: uint32(y.n), C: uint32(c), Inner: uint32(inner)}
	return dispatch(r, shaders.BiasAdd, nil, r.ewGroups(y.n), push, y, bias)
}

// BiasGrad records db[c] = sum of dy over every dimension but 1,
// overwriting db. Each channel is summed in a fixed order (a Kahan-
// compensated loop or a tree), so the result is deterministic.
func (r *Recorder) BiasGrad(db, dy *Tensor) error {
	if err := ewCheck("bias grad", []string{"db", "dy"}, db, dy); err != nil {
		return r.fail(err)
	}
	batch, c, inner, err := biasShape("bias grad", "dy", dy, db)
	if err != nil {
		return r.fail(err)
	}
	if lim := int(r.d.info.Limits.MaxWorkGroupCount[0]); c > lim {
		return r.fail(fmt.Errorf("engine: bias grad: %d channels exceed the device's %d workgroups", c, lim))
	}
	push := shaders.BiasGradPush{Batch: uint32(batch), C: uint32(c), Inner: uint32(inner)}
	// On a CPU device, workgroups and barriers cost more than the sums
	// when there are many channels, so each invocation sums one channel
	// (bias_grad_lane, 32 per workgroup). Few channels with much work each
	// keep the parallel tree. Measured on lavapipe (2 cores, noisy): [64,1024]
	// 16 -> 0.18 ms, [64,512,4,4] 7.4 -> 0.57 ms, [64,128,16,16] about equal.
	if r.d.class == ClassCPU && (c >= 32 || batch*inner <= 4096) {
		return dispatch(r, shaders.BiasGradLane, nil, [3]uint32{uint32((c + 31) / 32), 1, 1}, shaders.BiasGradLanePush(push), db, dy)
	}
	return dispatch(r, shaders.BiasGrad, nil, [3]uint32{uint32(c), 1, 1}, push, db, dy)
}

// Activation selectors: specialization constant 0 of act_fwd and act_bwd.
const (
	ewReLU uint32 = iota
	ewLeakyReLU
	ewTanh
	ewSigmoid
)

var ewActNames = [...]string{"relu", "leaky relu", "tanh", "sigmoid"}

func (r *Recorder) actForward(op uint32, y, x *Tensor, slope float32) error {
	name := ewActNames[op]
	if err := ewCheck(name, []string{"y", "x"}, y, x); err != nil {
		return r.fail(err)
	}
	if err := ewSameLen(name, "y", "x", y, x); err != nil {
		return r.fail(err)
	}
	if err := ewFinite(name, "slope", slope); err != nil {
		return r.fail(err)
	}
	if r.ewWide(y.n) {
		return dispatch(r, shaders.ActFwdW2, []uint32{op}, r.ewGroups(y.n/2), shaders.ActFwdPush{N: uint32(y.n / 2), Slope: slope}, y, x)
	}
	return dispatch(r, shaders.ActFwd, []uint32{op}, r.ewGroups(y.n), shaders.ActFwdPush{N: uint32(y.n), Slope: slope}, y, x)
}

// ewWide reports whether an elementwise kernel's w2 variant serves n
// elements: two floats per 64-bit word halves the per-lane accesses on CPU
// devices. Tensors start 256-byte aligned, so the words are aligned.
func (r *Recorder) ewWide(n int) bool { return n%2 == 0 && r.d.info.Limits.ShaderInt64 }

func (r *Recorder) actBackward(op uint32, dx, dy, v *Tensor, vn string, slope float32) error {
	name := ewActNames[op] + " backward"
	if err := ewCheck(name, []string{"dx", "dy", vn}, dx, dy, v); err != nil {
		return r.fail(err)
	}
	if err := ewSameLen(name, "dx", "dy", dx, dy); err != nil {
		return r.fail(err)
	}
	if err := ewSameLen(name, "dx", vn, dx, v); err != nil {
		return r.fail(err)
	}
	if err := ewFinite(name, "slope", slope); err != nil {
		return r.fail(err)
	}
	if r.ewWide(dx.n) {
		return dispatch(r, shaders.ActBwdW2, []uint32{op}, r.ewGroups(dx.n/2), shaders.ActBwdPush{N: uint32(dx.n / 2), Slope: slope}, dx, dy, v)
	}
	return dispatch(r, shaders.ActBwd, []uint32{op}, r.ewGroups(dx.n), shaders.ActBwdPush{N: uint32(dx.n), Slope: slope}, dx, dy, v)
}

// ReLU records y = max(x, 0). y may be x (in place).
func (r *Recorder) ReLU(y, x *Tensor) error { return r.actForward(ewReLU, y, x, 0) }

// LeakyReLU records y = x for x > 0, slope*x otherwise. y may be x.
func (r *Recorder) LeakyReLU(y, x *Tensor, slope float32) error {
	return r.actForward(ewLeakyReLU, y, x, slope)
}

// Tanh records y = tanh(x), exact to a few ulps and finite for any finite
// x. y may be x.
func (r *Recorder) Tanh(y, x *Tensor) error { return r.actForward(ewTanh, y, x, 0) }

// Sigmoid records y = 1/(1+exp(-x)), finite for any finite x. y may be x.
func (r *Recorder) Sigmoid(y, x *Tensor) error { return r.actForward(ewSigmoid, y, x, 0) }

// ReLUBackward records dx = dy where the forward input x > 0, else 0. dx
// may be dy.
func (r *Recorder) ReLUBackward(dx, dy, x *Tensor) error {
	return r.actBackward(ewReLU, dx, dy, x, "x", 0)
}

// LeakyReLUBackward records dx = dy where x > 0, slope*dy otherwise. dx may
// be dy.
func (r *Recorder) LeakyReLUBackward(dx, dy, x *Tensor, slope float32) error {
	return r.actBackward(ewLeakyReLU, dx, dy, x, "x", slope)
}

// TanhBackward records dx = dy*(1-y^2) from the forward output y. dx may be
// dy.
func (r *Recorder) TanhBackward(dx, dy, y *Tensor) error {
	return r.actBackward(ewTanh, dx, dy, y, "y", 0)
}

// SigmoidBackward records dx = dy*y*(1-y) from the forward output y. dx may
// be dy.
func (r *Recorder) SigmoidBackward(dx, dy, y *Tensor) error {
	return r.actBackward(ewSigmoid, dx, dy, y, "y", 0)
}

// ewMaxCPUGroups caps grid-stride kernels on CPU devices. lavapipe pays a
// fixed cost per workgroup; measured on 2 cores with a 1M-element scale, 16
// to 128 groups ran 4x faster than one group per 256 elements (0.92 vs
// 3.6 ms), and 64 leaves room to balance more cores.
const ewMaxCPUGroups = 64

// ewGroups is the workgroup count (of 256) for a grid-stride loop over n.
func (r *Recorder) ewGroups(n int) [3]uint32 {
	g := r.gridGroups(n, 256)
	if r.d.class == ClassCPU && g[0] > ewMaxCPUGroups {
		g[0] = ewMaxCPUGroups
	}
	return g
}
