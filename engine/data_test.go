package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGatherBatch splits a small data set over four buffers (by pretending
// the device's storage-buffer range holds three images) and checks that
// the gathered batches are the stored images scaled to [-1, 1], and that
// every epoch visits each image exactly once, in an order that changes
// from epoch to epoch.
func TestGatherBatch(t *testing.T) {
	d := newTestDevice(t)
	const n, c, s, batch = 10, 3, 3, 4 // 27-byte images: not word aligned
	img := c * s * s
	pix := randomData(5, n, c, s)
	saved := d.info.Limits.MaxStorageBufferRange
	d.info.Limits.MaxStorageBufferRange = uint64(3 * img)
	data, err := d.UploadData(pix, n, c, s)
	d.info.Limits.MaxStorageBufferRange = saved
	require.NoError(t, err)
	defer data.Release()
	require.Len(t, data.chunks, 4)

	out := zeros(t, d, batch, c, s, s)
	counter, err := d.NewCounter()
	require.NoError(t, err)
	defer counter.Release()
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.NoError(t, r.GatherBatch(out, data, counter, 42))

	var order []int // image index at each position
	for step := 0; step < 5; step++ {
		require.NoError(t, counter.Set(uint32(step)))
		require.NoError(t, r.Submit())
		got := download(t, out)
		for b := 0; b < batch; b++ {
			found := -1
			for i := 0; i < n && found < 0; i++ {
				match := true
				for k := 0; k < img && match; k++ {
					// The shader may divide as a multiply by 1/127.5: allow an ulp or two.
					match = abs(float64(got[b*img+k])-(float64(pix[i*img+k])/127.5-1)) < 1e-6
				}
				if match {
					found = i
				}
			}
			require.GreaterOrEqual(t, found, 0, "step %d image %d is not a data-set image", step, b)
			order = append(order, found)
		}
	}
	for e := 0; e < 2; e++ {
		seen := map[int]bool{}
		for _, i := range order[e*n : (e+1)*n] {
			seen[i] = true
		}
		require.Len(t, seen, n, "epoch %d is not a permutation: %v", e, order[e*n:(e+1)*n])
	}
	require.NotEqual(t, order[:n], order[n:2*n], "the order should change between epochs")

	_, err = d.UploadData(pix[:len(pix)-1], n, c, s)
	require.Error(t, err)
	d.info.Limits.MaxStorageBufferRange = uint64(img)
	_, err = d.UploadData(pix, n, c, s)
	d.info.Limits.MaxStorageBufferRange = saved
	require.ErrorContains(t, err, "at most 4 fit")
}
