package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// indexedData uploads n images of 2 channels x 1 pixel whose bytes spell
// the image's own index (i%256, i/256), so a gathered batch names the
// images it holds.
func indexedData(t *testing.T, d *Device, n int) *DeviceData {
	t.Helper()
	pix := make([]byte, 2*n)
	for i := range n {
		pix[2*i], pix[2*i+1] = byte(i%256), byte(i/256)
	}
	dd, err := d.UploadData(pix, n, 2, 1)
	require.NoError(t, err)
	t.Cleanup(dd.Release)
	return dd
}

// imageOf decodes the index indexedData wrote into row b of a batch.
func imageOf(batch []float32, b int) int {
	byteOf := func(v float32) int { return int(math.Round((float64(v) + 1) * 127.5)) }
	return byteOf(batch[2*b]) + 256*byteOf(batch[2*b+1])
}

// oneHotClass returns the class of a one-hot row, failing on anything
// else (every entry exactly 0 or 1, one 1).
func oneHotClass(t *testing.T, row []float32) int {
	t.Helper()
	class := -1
	for k, v := range row {
		switch {
		case v == 1 && class < 0:
			class = k
		case v != 0:
			t.Fatalf("row %v is not one-hot", row)
		}
	}
	require.GreaterOrEqual(t, class, 0, "row %v has no 1", row)
	return class
}

// TestGatherLabelsMatchesGatherBatch records GatherBatch and GatherLabels
// from one counter and seed and checks, over several epochs, that each
// label row is the label of the image in the same batch row: odd sizes
// (37 images in batches of 8, so batches straddle epochs) and the DCGAN's
// batch of 64 over 9 classes on 1000 images (a wider permutation).
func TestGatherLabelsMatchesGatherBatch(t *testing.T) {
	d := newTestDevice(t)
	for _, c := range []struct {
		n, batch, classes int
		seed              uint64
	}{
		{37, 8, 5, 42},
		{1000, 64, 9, 0x123456789abcdef},
		{2, 3, 2, 7}, // a batch larger than the data set
	} {
		dd := indexedData(t, d, c.n)
		labels := make([]int32, c.n)
		for i := range labels {
			labels[i] = int32(i % c.classes)
		}
		require.NoError(t, dd.SetLabels(labels, c.classes))
		require.Equal(t, c.classes, dd.Classes())
		imgs := zeros(t, d, c.batch, 2, 1, 1)
		onehot := zeros(t, d, c.batch, c.classes)
		counter := newCounterT(t, d, 0)
		r, err := d.Record()
		require.NoError(t, err)
		require.NoError(t, r.GatherBatch(imgs, dd, counter, c.seed))
		require.NoError(t, r.GatherLabels(onehot, dd, counter, c.seed))
		steps := 3*c.n/c.batch + 2
		for step := range steps {
			require.NoError(t, counter.Set(uint32(step)))
			require.NoError(t, r.Submit())
			batch, rows := download(t, imgs), download(t, onehot)
			for b := range c.batch {
				img := imageOf(batch, b)
				require.Less(t, img, c.n)
				got := oneHotClass(t, rows[b*c.classes:(b+1)*c.classes])
				require.Equal(t, int(labels[img]), got, "n %d step %d row %d: image %d", c.n, step, b, img)
			}
		}
		r.Release()
	}
}

// drawRef is draw_labels.comp on the host: the image row nb draws.
func drawLabelRef(nb int, n int, seed uint64, step uint32) int {
	w := philoxRef([4]uint32{uint32(nb), step, 0x6c61626c, 0}, [2]uint32{uint32(seed), uint32(seed >> 32)})
	return int(uint64(w[0]) * uint64(n) >> 32)
}

// TestDrawLabels checks DrawLabels against the host Philox reference
// exactly, that the draws change with the counter, and that the classes
// follow the data's class frequencies: a chi-square test over 4 steps of
// 4096 draws, for labels that are the images themselves (uniform over
// images, 49 degrees of freedom) and for skewed classes (3 degrees).
func TestDrawLabels(t *testing.T) {
	d := newTestDevice(t)
	const n, batch, steps, seed = 50, 4096, 4, 99
	for _, c := range []struct {
		name    string
		classes int
		label   func(i int) int32
		bound   float64 // chi-square above which the test fails: P about 2e-5 for a fair draw
	}{
		{"one class per image", n, func(i int) int32 { return int32(i) }, 100},
		{"skewed classes", 4, func(i int) int32 {
			switch {
			case i < 25:
				return 0
			case i < 40:
				return 1
			case i < 47:
				return 2
			}
			return 3
		}, 25},
	} {
		t.Run(c.name, func(t *testing.T) {
			dd := indexedData(t, d, n)
			labels := make([]int32, n)
			freq := make([]float64, c.classes)
			for i := range labels {
				labels[i] = c.label(i)
				freq[labels[i]] += 1.0 / n
			}
			require.NoError(t, dd.SetLabels(labels, c.classes))
			onehot := zeros(t, d, batch, c.classes)
			counter := newCounterT(t, d, 5)
			r, err := d.Record()
			require.NoError(t, err)
			defer r.Release()
			require.NoError(t, r.Increment(counter))
			require.NoError(t, r.DrawLabels(onehot, dd, counter, seed))
			counts := make([]float64, c.classes)
			var prev []float32
			for s := range steps {
				require.NoError(t, r.Submit())
				rows := download(t, onehot)
				step := uint32(6 + s)
				for b := range batch {
					got := oneHotClass(t, rows[b*c.classes:(b+1)*c.classes])
					require.Equal(t, int(labels[drawLabelRef(b, n, seed, step)]), got, "step %d row %d", step, b)
					counts[got]++
				}
				if prev != nil {
					require.NotEqual(t, prev, rows, "the draw should change after Increment")
				}
				prev = rows
			}
			chi2, total := 0.0, float64(batch*steps)
			for k, f := range freq {
				e := f * total
				chi2 += (counts[k] - e) * (counts[k] - e) / e
			}
			t.Logf("chi-square %.1f with %d degrees of freedom (bound %g)", chi2, c.classes-1, c.bound)
			require.Less(t, chi2, c.bound, "class counts %v for frequencies %v", counts, freq)
		})
	}
}

// TestLabelErrors checks that misuse is an error, never a panic: labels
// missing, of the wrong length or range, and one-hot outputs of the wrong
// shape.
func TestLabelErrors(t *testing.T) {
	d := newTestDevice(t)
	dd := indexedData(t, d, 6)
	counter := newCounterT(t, d, 0)
	onehot := zeros(t, d, 4, 3)
	for _, record := range []func(r *Recorder) error{
		func(r *Recorder) error { return r.GatherLabels(onehot, dd, counter, 1) },
		func(r *Recorder) error { return r.DrawLabels(onehot, dd, counter, 1) },
	} {
		r, err := d.Record()
		require.NoError(t, err)
		require.ErrorContains(t, record(r), "has no labels")
		require.Error(t, r.Submit(), "the error is sticky")
		r.Release()
	}
	require.ErrorContains(t, dd.SetLabels([]int32{0, 1, 2}, 3), "3 labels for 6 images")
	require.ErrorContains(t, dd.SetLabels([]int32{0, 1, 2, 0, 3, 1}, 3), "image 4 has label 3")
	require.ErrorContains(t, dd.SetLabels([]int32{0, 1, 2, 0, -1, 1}, 3), "image 4 has label -1")
	require.ErrorContains(t, dd.SetLabels(make([]int32, 6), 0), "0 classes")
	require.NoError(t, dd.SetLabels([]int32{0, 1, 2, 0, 1, 2}, 3))
	wrong := zeros(t, d, 4, 2)
	r, err := d.Record()
	require.NoError(t, err)
	require.ErrorContains(t, r.GatherLabels(wrong, dd, counter, 1), "[B,3] one-hot rows")
	require.ErrorContains(t, r.DrawLabels(nil, dd, counter, 1), "nil argument")
	require.ErrorContains(t, r.DrawLabels(onehot, dd, nil, 1), "nil argument")
	r.Release()
	var none *DeviceData
	require.Error(t, none.SetLabels(nil, 2))
}
