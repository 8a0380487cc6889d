package engine

import (
	"fmt"

	"vkgan/shaders"
)

// HingeLoss is the hinge adversarial loss of SNGAN and BigGAN: D's terms
// are mean relu(1 - x) on real data and mean relu(1 + x) on G's samples,
// G's is -mean(x). The gradient at a kink (x exactly 1 on real, -1 on
// fake) is 0, PyTorch's relu'(0). meanD is the mean raw logit, not a
// probability: with this loss the log's D(x) and D(G(z)) columns are mean
// logits.
type HingeLoss struct{}

// LSLoss is the least-squares adversarial loss (Mao et al. 2017, 0-1
// coding, with the paper's 1/2): D's terms are mean((x-1)^2)/2 on real
// data and mean(x^2)/2 on G's samples, G's is mean((x-1)^2)/2. meanD is
// the mean raw output of D, which the loss pulls towards 1 on real data
// and 0 on fake.
type LSLoss struct{}

var (
	_ Loss = HingeLoss{}
	_ Loss = LSLoss{}
)

// marginKind selects the function of margin_loss.comp and
// margin_backward.comp; c is the constant of the term.
type marginKind uint32

const (
	marginHinge  marginKind = iota // max(1 + c*x, 0)
	marginLinear                   // c*x
	marginSquare                   // (x - c)^2 / 2
)

// marginTerm is one loss term as the margin kernels compute it.
type marginTerm struct {
	kind marginKind
	c    float32
}

func (HingeLoss) term(t LossTerm) (marginTerm, bool) {
	switch t {
	case TermReal:
		return marginTerm{marginHinge, -1}, true
	case TermFake:
		return marginTerm{marginHinge, 1}, true
	case TermGen:
		return marginTerm{marginLinear, -1}, true
	}
	return marginTerm{}, false
}

func (LSLoss) term(t LossTerm) (marginTerm, bool) {
	switch t {
	case TermReal, TermGen:
		return marginTerm{marginSquare, 1}, true
	case TermFake:
		return marginTerm{marginSquare, 0}, true
	}
	return marginTerm{}, false
}

// Record records the term's mean loss into loss, the mean raw logit into
// meanD when it is not nil, and the gradient of the mean into dlogits.
func (l HingeLoss) Record(r *Recorder, term LossTerm, logits, dlogits, loss, meanD *Tensor) {
	mt, ok := l.term(term)
	r.marginRecord("hinge loss", term, ok, mt, logits, dlogits, loss, meanD)
}

// RecordJoint records both D terms over logits whose first realRows rows
// (the first dimension) are real and the rest fake: loss is the mean of
// the per-row terms over all rows, dlogits the gradient of twice that.
func (l HingeLoss) RecordJoint(r *Recorder, logits, dlogits *Tensor, realRows int, loss *Tensor) {
	re, _ := l.term(TermReal)
	fa, _ := l.term(TermFake)
	r.marginJoint("hinge loss joint", re, fa, logits, dlogits, realRows, loss)
}

// Record records the term's mean loss into loss, the mean raw output into
// meanD when it is not nil, and the gradient of the mean into dlogits.
func (l LSLoss) Record(r *Recorder, term LossTerm, logits, dlogits, loss, meanD *Tensor) {
	mt, ok := l.term(term)
	r.marginRecord("least-squares loss", term, ok, mt, logits, dlogits, loss, meanD)
}

// RecordJoint is HingeLoss.RecordJoint for the least-squares terms.
func (l LSLoss) RecordJoint(r *Recorder, logits, dlogits *Tensor, realRows int, loss *Tensor) {
	re, _ := l.term(TermReal)
	fa, _ := l.term(TermFake)
	r.marginJoint("least-squares loss joint", re, fa, logits, dlogits, realRows, loss)
}

// marginCheck validates what both margin recordings share.
func marginCheck(op string, logits, dlogits, loss *Tensor) error {
	switch {
	case logits == nil || logits.n == 0:
		return fmt.Errorf("engine: %s: logits is nil or empty", op)
	case loss == nil || loss.n != 1:
		return fmt.Errorf("engine: %s: loss must be a one-element tensor", op)
	case dlogits == nil || dlogits.n != logits.n:
		return fmt.Errorf("engine: %s: dlogits must have as many elements as logits %v", op, logits.shape)
	}
	return nil
}

func (r *Recorder) marginRecord(op string, term LossTerm, ok bool, mt marginTerm, logits, dlogits, loss, meanD *Tensor) {
	err := marginCheck(op, logits, dlogits, loss)
	if err == nil && !ok {
		err = fmt.Errorf("engine: %s: unknown loss term %d", op, term)
	}
	if err == nil && meanD != nil && meanD.n != 1 {
		err = fmt.Errorf("engine: %s: meanD must be nil or a one-element tensor", op)
	}
	if err != nil {
		r.fail(err)
		return
	}
	// split = n: every element takes c0. The gradient goes last, so that
	// the loss and meanD read logits before anything is written.
	n := logits.n
	r.marginLoss(mt.kind, loss, logits, n, mt.c, mt.c)
	if meanD != nil {
		r.Mean(meanD, logits)
	}
	r.marginBackward(mt.kind, dlogits, logits, n, mt.c, mt.c, 1)
}

func (r *Recorder) marginJoint(op string, re, fa marginTerm, logits, dlogits *Tensor, realRows int, loss *Tensor) {
	err := marginCheck(op, logits, dlogits, loss)
	if err == nil && (realRows < 0 || realRows > logits.shape[0]) {
		err = fmt.Errorf("engine: %s: realRows %d outside logits %v's %d rows", op, realRows, logits.shape, logits.shape[0])
	}
	if err != nil {
		r.fail(err)
		return
	}
	// A row may hold several logits (a patch discriminator's map).
	split := realRows * (logits.n / logits.shape[0])
	r.marginLoss(re.kind, loss, logits, split, re.c, fa.c)
	// Twice the mean over both halves is the sum of the two terms' means
	// when the halves are equal, as in BCELoss.RecordJoint.
	r.marginBackward(re.kind, dlogits, logits, split, re.c, fa.c, 2)
}

// marginLoss records loss = the mean of f(x, c), c = c0 for the first
// split elements and c1 after; f is margin_loss.comp's kind.
func (r *Recorder) marginLoss(kind marginKind, loss, logits *Tensor, split int, c0, c1 float32) {
	n := logits.n
	push := shaders.MarginLossPush{N: uint32(n), Split: uint32(split), C0: c0, C1: c1, K: float32(1 / float64(n))}
	dispatch(r, shaders.MarginLoss, []uint32{uint32(kind)}, [3]uint32{1, 1, 1}, push, loss, logits)
}

// marginBackward records dlogits = scale * f'(x, c)/n, the gradient of
// scale times marginLoss's mean.
func (r *Recorder) marginBackward(kind marginKind, dlogits, logits *Tensor, split int, c0, c1, scale float32) {
	n := logits.n
	k := float32(float64(scale) / float64(n))
	push := shaders.MarginBackwardPush{N: uint32(n), Split: uint32(split), C0: c0, C1: c1, K: k}
	dispatch(r, shaders.MarginBackward, []uint32{uint32(kind)}, r.gridGroups(n, 256), push, dlogits, logits)
}
