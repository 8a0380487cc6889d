package engine

import (
	"encoding/binary"
	"fmt"

	"vkgan/shaders"
)

// Class labels for conditional GANs. A labelled data set keeps one uint32
// class index per image on the device beside its pixels; a step turns
// them into one-hot rows [B, K] (Pass.Labels) for the real batch
// (GatherLabels, the images GatherBatch picks) and for the fake one
// (DrawLabels, the labels of images drawn at random, so that G is asked
// for each class as often as the data holds it).

// SetLabels uploads the class of each of the data set's images, an index
// in [0, classes), replacing any set before. It must not overlap a submit
// that reads them.
func (dd *DeviceData) SetLabels(labels []int32, classes int) error {
	if dd == nil || len(dd.chunks) == 0 {
		return fmt.Errorf("engine: labels: nil or released data set")
	}
	if len(labels) != dd.N {
		return fmt.Errorf("engine: labels: %d labels for %d images", len(labels), dd.N)
	}
	if classes < 1 {
		return fmt.Errorf("engine: labels: %d classes, want at least 1", classes)
	}
	b := make([]byte, 4*len(labels))
	for i, l := range labels {
		if l < 0 || int(l) >= classes {
			return fmt.Errorf("engine: labels: image %d has label %d, outside [0, %d)", i, l, classes)
		}
		binary.LittleEndian.PutUint32(b[4*i:], uint32(l))
	}
	t, err := dd.chunks[0].d.NewTensor(len(labels))
	if err != nil {
		return fmt.Errorf("engine: labels: %w", err)
	}
	// The buffer holds uint32s; tensors move float32 bits.
	if err := t.SetBytes(b); err != nil {
		t.Release()
		return fmt.Errorf("engine: labels: %w", err)
	}
	dd.labels.Release()
	dd.labels, dd.classes = t, classes
	return nil
}

// Classes is the number of classes SetLabels was given; 0 when unlabelled.
func (dd *DeviceData) Classes() int { return dd.classes }

// labelArgs checks the arguments shared by GatherLabels and DrawLabels
// and returns the batch size.
func labelArgs(op string, onehot *Tensor, dd *DeviceData, counter *Counter) (int, error) {
	if onehot == nil || dd == nil || counter.tensor() == nil || len(dd.chunks) == 0 {
		return 0, fmt.Errorf("engine: %s: nil argument or released data set", op)
	}
	if dd.labels == nil {
		return 0, fmt.Errorf("engine: %s: the data set has no labels (DeviceData.SetLabels)", op)
	}
	if len(onehot.shape) != 2 || onehot.shape[1] != dd.classes {
		return 0, fmt.Errorf("engine: %s: output %v does not hold [B,%d] one-hot rows", op, onehot.shape, dd.classes)
	}
	return onehot.shape[0], nil
}

// GatherLabels records onehot[n] = the one-hot label of the image that
// GatherBatch puts at row n for the same counter and seed: both kernels
// walk the one permutation (shaders/permute.glsl). onehot is [B, K] with
// K the data set's classes.
func (r *Recorder) GatherLabels(onehot *Tensor, dd *DeviceData, counter *Counter, seed uint64) error {
	return r.gatherLabels(onehot, dd, counter, seed, Rows{})
}

// gatherLabels is GatherLabels for rows of a global batch, as
// GatherBatchRows gathers their images.
func (r *Recorder) gatherLabels(onehot *Tensor, dd *DeviceData, counter *Counter, seed uint64, rows Rows) error {
	batch, err := labelArgs("gather labels", onehot, dd, counter)
	if err != nil {
		return r.fail(err)
	}
	global, offset, err := rows.push("gather labels", batch)
	if err != nil {
		return r.fail(err)
	}
	push := shaders.GatherLabelsPush{
		Batch: uint32(batch), N: uint32(dd.N), Classes: uint32(dd.classes),
		SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), HalfBits: dd.halfBits(),
		Global: global, Offset: offset,
	}
	return dispatch(r, shaders.GatherLabels, nil, r.gridGroups(batch, 64), push, onehot, counter.t, dd.labels)
}

// DrawLabels records onehot[n] = the one-hot label of an image drawn
// uniformly from the data set, independently for each row and of the
// batch permutation, with the Philox generator keyed by seed at the value
// of counter (a new draw after each Increment). The classes so follow the
// data set's class frequencies: labels for a fake batch. The draws are a
// stream of their own (see draw_labels.comp), apart from RandNormal's
// under the same seed and counter.
func (r *Recorder) DrawLabels(onehot *Tensor, dd *DeviceData, counter *Counter, seed uint64) error {
	return r.drawLabels(onehot, dd, counter, seed, Rows{})
}

// drawLabels is DrawLabels for rows of a global batch.
func (r *Recorder) drawLabels(onehot *Tensor, dd *DeviceData, counter *Counter, seed uint64, rows Rows) error {
	batch, err := labelArgs("draw labels", onehot, dd, counter)
	if err != nil {
		return r.fail(err)
	}
	_, offset, err := rows.push("draw labels", batch)
	if err != nil {
		return r.fail(err)
	}
	push := shaders.DrawLabelsPush{
		Batch: uint32(batch), N: uint32(dd.N), Classes: uint32(dd.classes),
		SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), Offset: offset,
	}
	return dispatch(r, shaders.DrawLabels, nil, r.gridGroups(batch, 64), push, onehot, counter.t, dd.labels)
}

// passLabels returns p.Labels as a [batch, classes] matrix for a
// conditional layer, or nil after failing the recording: a conditional
// network recorded without labels is a wiring bug, reported, not a panic.
func passLabels(r *Recorder, op string, p *Pass, batch, classes int) *Tensor {
	y := p.Labels
	if y == nil {
		r.fail(fmt.Errorf("engine: %s: no class labels: a conditional layer needs Pass.Labels, one-hot [%d, %d]", op, batch, classes))
		return nil
	}
	if y.buf == nil || y.shape[0] != batch || y.n != batch*classes {
		r.fail(fmt.Errorf("engine: %s: labels %v, want one-hot [%d, %d]", op, y.shape, batch, classes))
		return nil
	}
	if len(y.shape) == 2 {
		return y
	}
	return y.flat2(batch)
}
