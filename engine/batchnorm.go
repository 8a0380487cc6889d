package engine

import (
	"fmt"
	"math"
	"slices"

	"vkgan/shaders"
)

// bnShape is the layout batch norm sees: n samples of c channels of hw
// values each (hw = H*W, or 1 for [N,C]).
type bnShape struct{ n, c, hw int }

// bnCheck validates x (rank 2 or 4) and the per-channel tensors, which must
// each hold C elements.
func (r *Recorder) bnCheck(op string, x *Tensor, perChannel map[string]*Tensor) (bnShape, error) {
	if x == nil {
		return bnShape{}, fmt.Errorf("engine: %s: x is nil", op)
	}
	if len(x.shape) != 2 && len(x.shape) != 4 {
		return bnShape{}, fmt.Errorf("engine: %s: x has shape %v, want [N,C] or [N,C,H,W]", op, x.shape)
	}
	s := bnShape{n: x.shape[0], c: x.shape[1], hw: 1}
	if len(x.shape) == 4 {
		s.hw = x.shape[2] * x.shape[3]
	}
	if lim := int(r.d.info.Limits.MaxWorkGroupCount[0]); s.c > lim {
		return bnShape{}, fmt.Errorf("engine: %s: %d channels, device allows at most %d", op, s.c, lim)
	}
	for name, t := range perChannel {
		if t == nil {
			return bnShape{}, fmt.Errorf("engine: %s: %s is nil", op, name)
		}
		if t.n != s.c {
			return bnShape{}, fmt.Errorf("engine: %s: %s has %d elements, want C = %d", op, name, t.n, s.c)
		}
	}
	return s, nil
}

// bnLike checks that t is non-nil, shaped like x and not x's storage.
func bnLike(op, name string, t, x *Tensor) error {
	if t == nil {
		return fmt.Errorf("engine: %s: %s is nil", op, name)
	}
	if !slices.Equal(t.shape, x.shape) {
		return fmt.Errorf("engine: %s: %s has shape %v, want %v like x", op, name, t.shape, x.shape)
	}
	if t.shares(x) {
		return fmt.Errorf("engine: %s: %s may not alias x", op, name)
	}
	return nil
}

// bnColsMaxRows is the most rows the lane-per-channel variant walks; more
// rows than that are better split across a workgroup.
const bnColsMaxRows = 2048

// bnKernel picks the lane-per-channel variant for [N,C] with few rows, the
// 64-bit-word variant when every channel plane has an even length, and
// returns the kernel, the plane length in words and the workgroups.
func bnKernel[P shaders.Push](r *Recorder, s bnShape, base, w2, cols *shaders.Kernel[P]) (*shaders.Kernel[P], int, [3]uint32) {
	perChannel := [3]uint32{uint32(s.c), 1, 1}
	switch {
	case s.hw == 1 && s.n <= bnColsMaxRows:
		return cols, 1, [3]uint32{uint32((s.c + 63) / 64), 1, 1}
	case s.hw%2 == 0 && r.d.info.Limits.ShaderInt64:
		return w2, s.hw / 2, perChannel
	}
	return base, s.hw, perChannel
}

// BatchNormTrain records training-mode batch norm over dim 1 of x ([N,C] or
// [N,C,H,W]), with statistics over N, H and W as in PyTorch:
//
//	y = (x - mean) * invstd * gamma + beta,  invstd = 1/sqrt(var + eps)
//
// with var the biased variance. saveMean and saveInvStd (C elements each)
// receive mean and invstd for BatchNormBackward. The running estimates are
// updated as runMean = (1-momentum)*runMean + momentum*mean and likewise
// runVar with the unbiased variance; with a single value per channel,
// where that is undefined, the biased variance (0) is used instead. y may
// not alias x. momentum is in [0, 1] and eps > 0.
func (r *Recorder) BatchNormTrain(y, x, gamma, beta, runMean, runVar, saveMean, saveInvStd *Tensor, momentum, eps float32) error {
	return r.batchNormTrain(y, x, gamma, beta, runMean, runVar, saveMean, saveInvStd, momentum, eps, bnAct{})
}

// bnAct is an activation fused into batch norm's kernels: the one after
// every batch norm in the DCGAN. Fused, the forward writes act(y) and the
// backward takes dy through act's derivative first, which saves the
// activation's two passes. Only ReLU and LeakyReLU fuse: their derivative
// follows from the sign of y, which the backward recomputes from x.
type bnAct struct {
	kind  uint32 // the kernels' ACT: 0 none, 1 ReLU, 2 LeakyReLU
	slope float32
}

// fusedAct returns activation op (ewReLU, ...) in fused form, or false
// when batch norm cannot fuse it.
func fusedAct(op uint32, slope float32) (bnAct, bool) {
	switch op {
	case ewReLU:
		return bnAct{kind: 1}, true
	case ewLeakyReLU:
		return bnAct{kind: 2, slope: slope}, true
	}
	return bnAct{}, false
}

// batchNormTrain is BatchNormTrain with act applied to y.
func (r *Recorder) batchNormTrain(y, x, gamma, beta, runMean, runVar, saveMean, saveInvStd *Tensor, momentum, eps float32, act bnAct) error {
	const op = "batchnorm train"
	s, err := r.bnCheck(op, x, map[string]*Tensor{"gamma": gamma, "beta": beta, "runMean": runMean,
		"runVar": runVar, "saveMean": saveMean, "saveInvStd": saveInvStd})
	if err == nil {
		err = bnLike(op, "y", y, x)
	}
	if err == nil && !(momentum >= 0 && momentum <= 1) {
		err = fmt.Errorf("engine: %s: momentum %g is outside [0, 1]", op, momentum)
	}
	if err == nil && !(eps > 0 && !math.IsInf(float64(eps), 1)) {
		err = fmt.Errorf("engine: %s: eps %g must be positive and finite", op, eps)
	}
	if err != nil {
		return r.fail(err)
	}
	k, hw, groups := bnKernel(r, s, shaders.BnTrain, shaders.BnTrainW2, shaders.BnTrainCols)
	push := shaders.BnTrainPush{N: uint32(s.n), C: uint32(s.c), Hw: uint32(hw), Momentum: momentum, Eps: eps, Slope: act.slope}
	return dispatch(r, k, []uint32{act.kind}, groups, push, y, x, gamma, beta, runMean, runVar, saveMean, saveInvStd)
}

// BatchNormBackward records the training-mode batch-norm backward for
// BatchNormTrain's y given dy: dx, and dgamma and dbeta (overwritten, not
// accumulated). saveMean and saveInvStd are BatchNormTrain's outputs for x.
// dx may alias neither x nor dy.
func (r *Recorder) BatchNormBackward(dx, dgamma, dbeta, dy, x, gamma, saveMean, saveInvStd *Tensor) error {
	return r.batchNormBackward(dx, dgamma, dbeta, dy, x, gamma, gamma, saveMean, saveInvStd, bnAct{})
}

// batchNormBackward is BatchNormBackward for batchNormTrain with act: dy
// is the gradient of act(y), and beta (read only with act) is the forward's.
func (r *Recorder) batchNormBackward(dx, dgamma, dbeta, dy, x, gamma, beta, saveMean, saveInvStd *Tensor, act bnAct) error {
	const op = "batchnorm backward"
	s, err := r.bnCheck(op, x, map[string]*Tensor{"dgamma": dgamma, "dbeta": dbeta, "gamma": gamma, "beta": beta,
		"saveMean": saveMean, "saveInvStd": saveInvStd})
	if err == nil {
		err = bnLike(op, "dx", dx, x)
	}
	if err == nil {
		err = bnLike(op, "dy", dy, x)
	}
	if err == nil && dx.shares(dy) {
		err = fmt.Errorf("engine: %s: dx may not alias dy", op)
	}
	if err != nil {
		return r.fail(err)
	}
	k, hw, groups := bnKernel(r, s, shaders.BnBackward, shaders.BnBackwardW2, shaders.BnBackwardCols)
	push := shaders.BnBackwardPush{N: uint32(s.n), C: uint32(s.c), Hw: uint32(hw), Count: float32(s.n * s.hw), Slope: act.slope}
	return dispatch(r, k, []uint32{act.kind}, groups, push, dx, dgamma, dbeta, dy, x, gamma, saveMean, saveInvStd, beta)
}

// BatchNormInference records batch norm with the running statistics:
// y = (x - runMean) / sqrt(runVar + eps) * gamma + beta per channel. y may
// alias x.
func (r *Recorder) BatchNormInference(y, x, gamma, beta, runMean, runVar *Tensor, eps float32) error {
	const op = "batchnorm inference"
	s, err := r.bnCheck(op, x, map[string]*Tensor{"gamma": gamma, "beta": beta, "runMean": runMean, "runVar": runVar})
	if err == nil && y == nil {
		err = fmt.Errorf("engine: %s: y is nil", op)
	}
	if err == nil && !slices.Equal(y.shape, x.shape) {
		err = fmt.Errorf("engine: %s: y has shape %v, want %v like x", op, y.shape, x.shape)
	}
	if err == nil && !(eps > 0 && !math.IsInf(float64(eps), 1)) {
		err = fmt.Errorf("engine: %s: eps %g must be positive and finite", op, eps)
	}
	if err != nil {
		return r.fail(err)
	}
	push := shaders.BnInferPush{Total: uint32(x.n), C: uint32(s.c), Hw: uint32(s.hw), Eps: eps}
	return dispatch(r, shaders.BnInfer, nil, r.gridGroups(x.n, 256), push, y, x, gamma, beta, runMean, runVar)
}
