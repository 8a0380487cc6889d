package engine

import (
	"fmt"
	"math"

	"vkgan/shaders"
)

func finite32(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// bceCheck validates the logits and, when non-nil, the targets (same
// number of elements as logits; shapes may differ, e.g. [N] and [N,1,1,1]).
func bceCheck(op string, logits, targets *Tensor, needTargets bool) error {
	if logits == nil {
		return fmt.Errorf("engine: %s: logits is nil", op)
	}
	if needTargets {
		if targets == nil {
			return fmt.Errorf("engine: %s: targets is nil", op)
		}
		if targets.n != logits.n {
			return fmt.Errorf("engine: %s: targets %v has %d elements, logits %v has %d", op, targets.shape, targets.n, logits.shape, logits.n)
		}
	}
	return nil
}

// bceLoss records the mean binary cross-entropy with logits into loss, with
// the constant target when constant is set.
func (r *Recorder) bceLoss(op string, loss, logits, targets *Tensor, constant bool, target float32) error {
	err := bceCheck(op, logits, targets, !constant)
	if err == nil && (loss == nil || loss.n != 1) {
		err = fmt.Errorf("engine: %s: loss must be a one-element tensor", op)
	}
	if err == nil && !finite32(target) {
		err = fmt.Errorf("engine: %s: target %g is not finite", op, target)
	}
	if err != nil {
		return r.fail(err)
	}
	spec := []uint32{0}
	if constant {
		spec[0], targets = 1, logits // binding 2 is not read
	}
	invN := float32(1 / float64(logits.n))
	push := shaders.BceLossPush{N: uint32(logits.n), Target: target, InvN: invN}
	return dispatch(r, shaders.BceLoss, spec, [3]uint32{1, 1, 1}, push, loss, logits, targets)
}

// bceBackward records dlogits = scale*(sigmoid(x) - t)/n, with the
// constant target when constant is set.
func (r *Recorder) bceBackward(op string, dlogits, logits, targets *Tensor, constant bool, target, scale float32) error {
	err := bceCheck(op, logits, targets, !constant)
	if err == nil && (dlogits == nil || dlogits.n != logits.n) {
		err = fmt.Errorf("engine: %s: dlogits must have as many elements as logits %v", op, logits.shape)
	}
	if err == nil && (!finite32(target) || !finite32(scale)) {
		err = fmt.Errorf("engine: %s: target %g and scale %g must be finite", op, target, scale)
	}
	if err != nil {
		return r.fail(err)
	}
	spec := []uint32{0}
	if constant {
		spec[0], targets = 1, logits
	}
	k := float32(float64(scale) / float64(logits.n))
	push := shaders.BceBackwardPush{N: uint32(logits.n), Target: target, K: k}
	return dispatch(r, shaders.BceBackward, spec, r.gridGroups(logits.n, 256), push, dlogits, logits, targets)
}

// BCEWithLogits records loss (one element) = the mean over all elements of
// max(x,0) - x*t + log(1+exp(-|x|)), PyTorch's BCEWithLogitsLoss with mean
// reduction, stable for any finite logit. targets has as many elements as
// logits. The sum runs in one workgroup, so it suits the GAN's per-sample
// outputs rather than millions of logits.
func (r *Recorder) BCEWithLogits(loss, logits, targets *Tensor) error {
	return r.bceLoss("bce with logits", loss, logits, targets, false, 0)
}

// BCEWithLogitsBackward records dlogits = scale*(sigmoid(x) - t)/n, the
// gradient of scale*BCEWithLogits. dlogits may alias logits.
func (r *Recorder) BCEWithLogitsBackward(dlogits, logits, targets *Tensor, scale float32) error {
	return r.bceBackward("bce with logits backward", dlogits, logits, targets, false, 0, scale)
}

// BCEWithLogitsConst is BCEWithLogits with every target equal to target
// (the GAN's real, fake or smoothed label).
func (r *Recorder) BCEWithLogitsConst(loss, logits *Tensor, target float32) error {
	return r.bceLoss("bce with logits", loss, logits, nil, true, target)
}

// BCEWithLogitsConstBackward is BCEWithLogitsBackward with every target
// equal to target.
func (r *Recorder) BCEWithLogitsConstBackward(dlogits, logits *Tensor, target, scale float32) error {
	return r.bceBackward("bce with logits backward", dlogits, logits, nil, true, target, scale)
}
