package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReshapeRelease: a reshaped tensor is a view, so releasing it leaves
// its parent's storage alone; the parent's own Release still frees it.
func TestReshapeRelease(t *testing.T) {
	d := newTestDevice(t)
	x, err := d.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	require.NoError(t, err)
	defer x.Release()
	v, err := x.Reshape(3, 2)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 2}, v.Shape())
	assert.Equal(t, []float32{1, 2, 3, 4, 5, 6}, download(t, v), "the view reads the parent's storage")
	require.NoError(t, v.Upload([]float32{6, 5, 4, 3, 2, 1}))
	assert.Equal(t, []float32{6, 5, 4, 3, 2, 1}, download(t, x), "a write through the view lands in the parent")

	v.Release()
	v.Release()
	require.NoError(t, x.Upload([]float32{7, 8, 9, 10, 11, 12}), "parent after its reshape's Release")
	assert.Equal(t, []float32{7, 8, 9, 10, 11, 12}, download(t, x))

	// A reshape of a reshape is a view too.
	w, err := x.Reshape(6)
	require.NoError(t, err)
	w2, err := w.Reshape(1, 6)
	require.NoError(t, err)
	w2.Release()
	w.Release()
	assert.Equal(t, []float32{7, 8, 9, 10, 11, 12}, download(t, x))

	x.Release()
	assert.Error(t, x.Upload(make([]float32, 6)), "the parent's Release freed the storage")
	x.Release() // idempotent: the storage is freed once
}

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
	step := newCounterT(t, d, 1)
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
