package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// permHashRef and permuteRef are permute.glsl on the host.
func permHashRef(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

func permuteRef(i, epoch, n, halfBits uint32, seed uint64) uint32 {
	mask := uint32(1)<<halfBits - 1
	key := permHashRef(uint32(seed) ^ permHashRef(uint32(seed>>32)+0x9e3779b9*(epoch+1)))
	x := i
	for range 4096 {
		l, r := x>>halfBits, x&mask
		for round := range uint32(4) {
			f := permHashRef(r^permHashRef(key+round)) & mask
			l, r = r, l^f
		}
		x = l<<halfBits | r
		if x < n {
			return x
		}
	}
	return i
}

// globalImageRef is the image at row row of global batch counter.
func globalImageRef(counter, global, row, n, halfBits uint32, seed uint64) int {
	pos := counter*global + row
	epoch := pos / n
	return int(permuteRef(pos-epoch*n, epoch, n, halfBits, seed))
}

// TestShardRowsGather checks each rank's shard of the data order, its
// labels and the fake labels against the host reference of the global
// batch: rank r of W at batch B gathers rows r*B.. of the global batch
// W*B, so the ranks together gather exactly one process's batch; and the
// zero Rows is the one-process batch.
func TestShardRowsGather(t *testing.T) {
	d := newTestDevice(t)
	const n, classes, seed = 37, 5, 0x123456789abcdef
	dd := indexedData(t, d, n)
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32((i * 7) % classes)
	}
	require.NoError(t, dd.SetLabels(labels, classes))
	for _, c := range []struct{ ranks, batch int }{{1, 8}, {2, 4}, {3, 5}} {
		counter := newCounterT(t, d, 0)
		global := c.ranks * c.batch
		for rank := range c.ranks {
			rows := Rows{Global: global, Offset: rank * c.batch}
			imgs := zeros(t, d, c.batch, 2, 1, 1)
			real, fake := zeros(t, d, c.batch, classes), zeros(t, d, c.batch, classes)
			r, err := d.Record()
			require.NoError(t, err)
			require.NoError(t, r.GatherBatchRows(imgs, dd, counter, seed, rows))
			require.NoError(t, dd.RecordLabels(r, real, fake, counter, seed, rows))
			for step := range 3*n/global + 2 {
				require.NoError(t, counter.Set(uint32(step)))
				require.NoError(t, r.Submit())
				batch, rl, fl := download(t, imgs), download(t, real), download(t, fake)
				for b := range c.batch {
					row := uint32(rank*c.batch + b)
					want := globalImageRef(uint32(step), uint32(global), row, n, dd.halfBits(), seed)
					require.Equal(t, want, imageOf(batch, b), "ranks %d rank %d step %d row %d", c.ranks, rank, step, b)
					require.Equal(t, int(labels[want]), oneHotClass(t, rl[b*classes:(b+1)*classes]))
					drawn := drawLabelRef(int(row), n, seed^fakeLabelSeed, uint32(step))
					require.Equal(t, int(labels[drawn]), oneHotClass(t, fl[b*classes:(b+1)*classes]))
				}
			}
			r.Release()
		}
	}
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.ErrorContains(t, r.GatherBatchRows(zeros(t, d, 4, 2, 1, 1), dd, newCounterT(t, d, 0), 1, Rows{Global: 6, Offset: 4}),
		"do not fit a global batch")
}

// TestShardRandAt checks RandNormalAt and the annealed noise at offsets
// that do and do not start a Philox quad against the float64 reference
// of the whole stream's tail.
func TestShardRandAt(t *testing.T) {
	d := newTestDevice(t)
	const seed = 0x0fedcba987654321
	for _, c := range []struct{ n, offset int }{{5, 0}, {7, 1}, {13, 3}, {8, 4}, {1, 6}, {300, 4097}} {
		step := newCounterT(t, d, 9)
		z := zeros(t, d, c.n)
		noise := zeros(t, d, c.n)
		run(t, d, func(r *Recorder) error {
			r.RandNormalAt(z, seed, step, c.offset, 0.5, 2)
			return r.addAnnealedNoise(noise, seed, step, c.offset, 3, 36)
		})
		ref := randRef(true, c.offset+c.n, seed, 9, 0.5, 2)[c.offset:]
		assertClose(t, "normal at offset", ref, download(t, z), 1e-5, 2e-5)
		// The annealed std is 3*(1 - 9/36) = 2.25, on the unit normals.
		unit := randRef(true, c.offset+c.n, seed, 9, 0, 1)[c.offset:]
		for i := range unit {
			unit[i] *= 3 * (1 - 9.0/36)
		}
		assertClose(t, "annealed at offset", unit, download(t, noise), 1e-5, 2e-5)
	}
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.ErrorContains(t, r.RandNormalAt(zeros(t, d, 4), seed, newCounterT(t, d, 0), -1, 0, 1), "outside the stream")
}

// TestShardMixSample checks that the toy mixture's shards are rows of the
// global batch: W ranks' points concatenated equal one draw of W*B.
func TestShardMixSample(t *testing.T) {
	d := newTestDevice(t)
	const ranks, batch = 3, 7
	ct := tensorOf(t, d, ringCenters(8, 1), 16)
	counter := newCounterT(t, d, 5)
	whole := zeros(t, d, ranks*batch, 2)
	parts := make([]*Tensor, ranks)
	run(t, d, func(r *Recorder) error {
		r.mixSample(whole, ct, counter, 2, 0.01, 42, Rows{})
		for k := range parts {
			parts[k] = zeros(t, d, batch, 2)
			r.mixSample(parts[k], ct, counter, 2, 0.01, 42, Rows{Global: ranks * batch, Offset: k * batch})
		}
		return r.Err()
	})
	var got []float32
	for _, p := range parts {
		got = append(got, download(t, p)...)
	}
	want := download(t, whole)
	for i := range want {
		// The same kernel on the same sample index: bit-identical.
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "value %d", i)
	}
	// And toy_mix.comp on the host, in float64, for every global row.
	centers := ringCenters(8, 1)
	seed := uint64(42)
	ref := make([]float64, 0, 2*ranks*batch)
	for i := range ranks * batch {
		w := philoxRef([4]uint32{uint32(i), 5, 0x746f79, 0}, [2]uint32{uint32(seed), uint32(seed >> 32)})
		const kk = 7 // 8 modes, one held out
		m := min(int(unitRef(w[0])*kk), kk-1)
		if m >= 2 {
			m++
		}
		r := math.Sqrt(-2 * math.Log(float64(unitRef(w[1]))))
		th := 2 * math.Pi * float64(unitRef(w[2]))
		ref = append(ref, float64(centers[2*m])+0.01*r*math.Cos(th), float64(centers[2*m+1])+0.01*r*math.Sin(th))
	}
	assertClose(t, "mixture", ref, got, 1e-5, 1e-6)
}
