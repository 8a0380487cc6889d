package engine

// LossTerm is one of the three places an adversarial loss is taken.
type LossTerm int

const (
	TermReal LossTerm = iota // D on real data
	TermFake                 // D on G's samples, G detached
	TermGen                  // G's loss through D on its samples
)

// Loss is an adversarial loss. For each term it records the mean loss
// over the batch into loss (one element), D's mean output as the metrics
// report it into meanD (one element; nil: not measured), and the loss's
// gradient with respect to the logits into dlogits. A new loss is one type
// in one file.
type Loss interface {
	Record(r *Recorder, term LossTerm, logits, dlogits, loss, meanD *Tensor)
	// RecordJoint records D's two terms at once, for logits whose first
	// realRows rows are real and the rest fake (GANConfig.JointD): into
	// loss the mean over all rows, half the sum of the terms' means, and
	// into dlogits the gradient of that sum.
	RecordJoint(r *Recorder, logits, dlogits *Tensor, realRows int, loss *Tensor)
}

// BCELoss is the example's loss: binary cross-entropy with logits, target
// RealLabel (1, or less for one-sided label smoothing) for real data and 0
// for fake in D's terms, and the non-saturating target 1 for G. meanD is
// the mean sigmoid of the logits, D(x) and D(G(z)) in the example's log.
type BCELoss struct {
	RealLabel float32
}

func (l BCELoss) Record(r *Recorder, term LossTerm, logits, dlogits, loss, meanD *Tensor) {
	target := float32(1)
	switch term {
	case TermReal:
		target = l.RealLabel
	case TermFake:
		target = 0
	}
	r.BCEWithLogitsConst(loss, logits, target)
	if meanD != nil {
		prob, err := r.workspace(logits.shape...)
		if err != nil {
			r.fail(err)
			return
		}
		r.Sigmoid(prob, logits)
		r.Mean(meanD, prob)
	}
	r.BCEWithLogitsConstBackward(dlogits, logits, target, 1)
}

func (l BCELoss) RecordJoint(r *Recorder, logits, dlogits *Tensor, realRows int, loss *Tensor) {
	targets, err := r.workspace(logits.n)
	if err == nil {
		t := make([]float32, logits.n)
		for i := 0; i < realRows && i < len(t); i++ {
			t[i] = l.RealLabel
		}
		err = targets.Upload(t)
	}
	if err != nil {
		r.fail(err)
		return
	}
	r.BCEWithLogits(loss, logits, targets)
	// Twice the mean over both halves is the sum of the two terms' means.
	r.BCEWithLogitsBackward(dlogits, logits, targets, 2)
}
