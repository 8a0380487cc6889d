package engine

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/shaders"
	"vkgan/vk"
)

func TestFill(t *testing.T) {
	d := newTestDevice(t)
	for _, n := range []int{1, 7, 256, 1000003} {
		x := zeros(t, d, n)
		run(t, d, func(r *Recorder) error { return r.Fill(x, 2.5) })
		got := download(t, x)
		for i, v := range got {
			if v != 2.5 {
				t.Fatalf("n=%d: x[%d] = %g, want 2.5", n, i, v)
			}
		}
	}
}

func TestCounterReplay(t *testing.T) {
	d := newTestDevice(t)
	c, err := d.NewCounter()
	require.NoError(t, err)
	defer c.Release()
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.NoError(t, r.Increment(c))
	for i := 0; i < 5; i++ {
		require.NoError(t, r.Submit())
	}
	v, err := c.Value()
	require.NoError(t, err)
	require.Equal(t, uint32(5), v)
}

func TestBadTensors(t *testing.T) {
	d := newTestDevice(t)
	_, err := d.NewTensor(0, 3)
	require.Error(t, err)
	_, err = d.NewTensor()
	require.Error(t, err)
	max := d.Info().Limits.MaxStorageBufferRange
	_, err = d.NewTensor(int(max/4) + 1)
	require.True(t, errors.Is(err, vk.ErrTooLarge), "got %v", err)
	x := zeros(t, d, 4)
	require.Error(t, x.Upload(make([]float32, 3)))
	_, err = x.Reshape(3)
	require.Error(t, err)
}

// TestDispatchChecks checks that a dispatch whose tensors or
// specialization constants do not match the kernel's descriptor fails when
// it is recorded, and that the error sticks.
func TestDispatchChecks(t *testing.T) {
	d := newTestDevice(t)
	x := zeros(t, d, 4)
	one := [3]uint32{1, 1, 1}
	for _, tc := range []struct {
		name string
		rec  func(r *Recorder) error
		want string
	}{
		{"tensors", func(r *Recorder) error {
			return dispatch(r, shaders.Fill, nil, one, shaders.FillPush{N: 4}, x, x)
		}, "engine: fill: 2 tensors for the kernel's 1 bindings"},
		{"spec", func(r *Recorder) error {
			return dispatch(r, shaders.ActFwd, nil, one, shaders.ActFwdPush{N: 4}, x, x)
		}, "engine: act_fwd: 0 specialization constants for the kernel's 1"},
	} {
		r, err := d.Record()
		require.NoError(t, err)
		err = tc.rec(r)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.Equal(t, err, r.Fill(x, 1), "%s: the error is sticky", tc.name)
		require.Equal(t, err, r.Submit(), tc.name)
		r.Release()
	}
}
