package engine

import (
	"fmt"
	"math"
)

// Counter is a step counter on the device: one uint32 that Increment adds
// one to inside a recording and that the batch, RNG and Adam kernels read,
// so the same recorded step draws the next batch and noise each time it is
// submitted. It is a type of its own so that no float tensor is ever read
// as a counter, nor a counter as floats.
type Counter struct {
	t *Tensor
	// sets counts the host's Sets, so that a host-side copy of the value
	// (the GAN's step count for lazy R1) knows when it went stale.
	sets uint64
}

// NewCounter allocates a counter at zero.
func (d *Device) NewCounter() (*Counter, error) {
	t, err := d.NewTensor(1)
	if err != nil {
		return nil, fmt.Errorf("engine: counter: %w", err)
	}
	return &Counter{t: t}, nil
}

// Value downloads the counter.
func (c *Counter) Value() (uint32, error) {
	v, err := c.t.Download()
	if err != nil {
		return 0, err
	}
	// The buffer holds a uint32; tensors move float32s.
	return math.Float32bits(v[0]), nil
}

// Set uploads v as the counter's value.
func (c *Counter) Set(v uint32) error {
	c.sets++
	return c.t.Upload([]float32{math.Float32frombits(v)})
}

// Release frees the counter. It is safe on nil and more than once.
func (c *Counter) Release() {
	if c != nil {
		c.t.Release()
	}
}

// tensor is the counter's buffer for a dispatch, nil for a nil counter.
func (c *Counter) tensor() *Tensor {
	if c == nil {
		return nil
	}
	return c.t
}
