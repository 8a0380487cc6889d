package engine

import "fmt"

// A layer's output gradient is live only from the backward of the layer
// after it, which writes it, to the layer's own backward, which reads it
// and writes the gradient of its input. So along a chain two buffers
// suffice: each layer takes its output gradient from the one that does not
// hold its input's, and in-place layers (activations, Flatten) keep their
// input's. A training step's networks run their backward passes one after
// another, so G and D can share the two buffers too; the one place they
// meet is D's first layer, whose backward writes G's output gradient, and
// that layer avoids G's buffer as it would a layer's input.
//
// Whatever reads gradients after the backward pass that wrote them must not
// take them from a pool: R1's tangent pass reads every layer's (NewGAN
// binds D without one when R1 is on).

// gradPool is where the layers of one bound network take their output
// gradients: views of two shared buffers, or tensors of their own when one
// does not fit.
type gradPool struct {
	bufs *[2]*Tensor
	// input is the gradient the network's first layer writes in its
	// backward (G's output gradient for D), nil when it writes none.
	input *Tensor
}

// forceOwnGradients gives every layer a gradient buffer of its own, for
// tests and benchmarks that compare the two.
var forceOwnGradients bool

// withInput is p for a network whose first layer's backward writes input.
func (p *gradPool) withInput(input *Tensor) *gradPool {
	if p == nil {
		return nil
	}
	return &gradPool{bufs: p.bufs, input: input}
}

// newGradBuffers allocates the two shared buffers of n floats each.
func newGradBuffers(d *Device, n int, keep func(*Tensor)) (*[2]*Tensor, error) {
	var bufs [2]*Tensor
	for i := range bufs {
		var err error
		if bufs[i], err = alloc(d, keep, n); err != nil {
			return nil, err
		}
	}
	return &bufs, nil
}

// grad returns a gradient tensor of the given shape for a layer whose
// input is prev: a view of the pool's buffer that prev.DX (or, for a
// network's first layer, the pool's input) is not in, or a tensor of its
// own without a pool or when the shape does not fit.
func (p *gradPool) grad(d *Device, prev Port, keep func(*Tensor), shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if p == nil || n > p.bufs[0].n {
		return alloc(d, keep, shape...)
	}
	avoid := prev.DX
	if avoid == nil && prev.X == nil {
		avoid = p.input
	}
	buf := p.bufs[0]
	if avoid != nil && avoid.shares(buf) {
		buf = p.bufs[1]
	}
	return buf.View(0, shape...)
}

// allocGrad allocates a layer's output gradient, from the pool prev
// carries when it has one.
func allocGrad(d *Device, prev Port, keep func(*Tensor), shape ...int) (*Tensor, error) {
	return prev.grads.grad(d, prev, keep, shape...)
}

// bindForward binds net for forward passes only. Nothing writes its
// gradients, so every layer's are views of one pool's buffers.
func (n *Net) bindForward(d *Device, batch int, out *Tensor, keep func(*Tensor)) (Bound, error) {
	if forceOwnGradients {
		return n.BindInto(d, batch, out, keep)
	}
	bufs, err := newGradBuffers(d, maxGradFloats(n, batch), keep)
	if err != nil {
		return nil, fmt.Errorf("engine: %s activations: %w", n.Name, err)
	}
	return n.bindPooled(d, batch, out, &gradPool{bufs: bufs}, keep)
}

// maxGradFloats is the largest output gradient among net's layers bound to
// batch: what a pool's buffers must hold for every layer to fit.
func maxGradFloats(net *Net, batch int) int {
	most := 0
	leafOutputs(net.Body, net.In, func(_ Layer, out []int) {
		most = max(most, batch*prod(out))
	})
	return most
}

// gradBufferFloats is the size of a GAN's two shared gradient buffers: the
// largest layer gradient of G at the batch and of D at the batch it is
// bound to (both halves at once with JointD).
func gradBufferFloats(cfg GANConfig) int {
	dBatch := cfg.Batch
	if cfg.JointD {
		dBatch = 2 * cfg.Batch / max(cfg.Pack, 1)
	}
	return max(maxGradFloats(cfg.G, cfg.Batch), maxGradFloats(cfg.D, dBatch))
}
