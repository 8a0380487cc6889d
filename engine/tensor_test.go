package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAliasChecksSeeViews: the checks that forbid an output aliasing an
// input compare storage, so a reshape or an overlapping view of the input
// is caught, while a disjoint view of the same storage is not.
func TestAliasChecksSeeViews(t *testing.T) {
	d := newTestDevice(t)
	reshaped := func(x *Tensor, shape ...int) *Tensor {
		v, err := x.Reshape(shape...)
		require.NoError(t, err)
		return v
	}
	view := func(x *Tensor, off int, shape ...int) *Tensor {
		v, err := x.View(off, shape...)
		require.NoError(t, err)
		return v
	}
	a, b := zeros(t, d, 5, 5), zeros(t, d, 5, 5)
	x := zeros(t, d, 2, 128)
	p := zeros(t, d, 512)
	m := zeros(t, d, 25)
	step := zeros(t, d, 1)
	for _, tc := range []struct {
		name string
		rec  func(r *Recorder) error
		want string // "" for no error
	}{
		{"gemm c reshaped a", func(r *Recorder) error {
			return r.Gemm(reshaped(a, 5, 5), a, b, false, false, 1, 0, nil)
		}, "alias"},
		{"maxout y view of x", func(r *Recorder) error { return r.Maxout(view(x, 0, 2, 64), x, 2) }, "alias"},
		{"maxout y disjoint view", func(r *Recorder) error {
			return r.Maxout(view(p, 256, 2, 64), view(p, 0, 2, 128), 2)
		}, ""},
		{"adam m reshaped grad", func(r *Recorder) error {
			return r.AdamStep(reshaped(a, 25), reshaped(b, 25), reshaped(b, 5, 5), m, step, DefaultAdam())
		}, "share storage"},
	} {
		r, err := d.Record()
		require.NoError(t, err)
		err = tc.rec(r)
		r.Release()
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorContains(t, err, tc.want, tc.name)
		}
	}
}
