package engine

import (
	"fmt"
	"slices"

	"vkgan/shaders"
)

// maxoutCheck validates x [N, U*pieces] against y (or dy) [N, U].
func maxoutCheck(op string, y, x *Tensor, pieces int) error {
	if x == nil || y == nil {
		return fmt.Errorf("engine: %s: nil tensor (x %s, y %s)", op, shapeStr(x), shapeStr(y))
	}
	if pieces < 1 {
		return fmt.Errorf("engine: %s: pieces %d must be at least 1", op, pieces)
	}
	if len(x.shape) != 2 || len(y.shape) != 2 || x.shape[0] != y.shape[0] || x.shape[1] != y.shape[1]*pieces {
		return fmt.Errorf("engine: %s: x %v must be [N, U*%d] for y %v = [N, U]", op, x.shape, pieces, y.shape)
	}
	if y.shares(x) {
		return fmt.Errorf("engine: %s: output may not alias x", op)
	}
	return nil
}

// Maxout records y[n,u] = max over j < pieces of x[n, u*pieces+j] (Goodfellow
// et al., 2013): x is a linear layer's [N, U*pieces] output with each
// unit's pieces adjacent, y is [N, U].
func (r *Recorder) Maxout(y, x *Tensor, pieces int) error {
	if err := maxoutCheck("maxout", y, x, pieces); err != nil {
		return r.fail(err)
	}
	if r.maxoutQuads(y.n, pieces) {
		push := shaders.MaxoutFwdPush{Rows: uint32(y.n / 4), Pieces: uint32(pieces)}
		return dispatch(r, shaders.MaxoutFwdQ4, []uint32{uint32(pieces)}, r.ewGroups(y.n/4), push, y, x)
	}
	push := shaders.MaxoutFwdPush{Rows: uint32(y.n), Pieces: uint32(pieces)}
	return dispatch(r, shaders.MaxoutFwd, nil, r.gridGroups(y.n, 256), push, y, x)
}

// forceScalarMaxout keeps the maxout kernels off their q4 variants; tests
// and benchmarks compare the two.
var forceScalarMaxout bool

// maxoutQuads reports whether the maxout kernels' q4 variants serve rows
// of pieces: four rows an invocation, read and written as vec4s. On CPU
// devices, where each buffer access is a per-lane loop, that is a quarter
// of the accesses.
func (r *Recorder) maxoutQuads(rows, pieces int) bool {
	return r.d.class == ClassCPU && rows%4 == 0 && pieces <= 16 && !forceScalarMaxout
}

// MaxoutBackward records dx for Maxout: dy[n,u] goes to the first piece
// holding the maximum, the other pieces get 0. dx is overwritten.
func (r *Recorder) MaxoutBackward(dx, dy, x *Tensor, pieces int) error {
	err := maxoutCheck("maxout backward", dy, x, pieces)
	if err == nil && dx == nil {
		err = fmt.Errorf("engine: maxout backward: dx is nil")
	}
	if err == nil && !slices.Equal(dx.shape, x.shape) {
		err = fmt.Errorf("engine: maxout backward: dx %v must be shaped like x %v", dx.shape, x.shape)
	}
	if err == nil && (dx.shares(x) || dx.shares(dy)) {
		err = fmt.Errorf("engine: maxout backward: dx may not alias x or dy")
	}
	if err != nil {
		return r.fail(err)
	}
	if r.maxoutQuads(dy.n, pieces) {
		push := shaders.MaxoutBwdPush{Rows: uint32(dy.n / 4), Pieces: uint32(pieces)}
		return dispatch(r, shaders.MaxoutBwdQ4, []uint32{uint32(pieces)}, r.ewGroups(dy.n/4), push, dx, dy, x)
	}
	push := shaders.MaxoutBwdPush{Rows: uint32(dy.n), Pieces: uint32(pieces)}
	return dispatch(r, shaders.MaxoutBwd, nil, r.gridGroups(dy.n, 256), push, dx, dy, x)
}
