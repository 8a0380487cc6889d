package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
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

// simWorld is an all-reduce among goroutines, for ranks simulated in one
// process: every rank gets the sum taken in rank order, so all get the
// same bits, as MPI's all-reduce guarantees.
type simWorld struct {
	mu      sync.Mutex
	cond    *sync.Cond
	bufs    [][]float32
	arrived int
	gen     int
	sum     []float32
	failed  bool
	bytes   int // float32 bytes reduced per rank, for the log
}

func newSimWorld(n int) *simWorld {
	w := &simWorld{bufs: make([][]float32, n)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *simWorld) reduce(rank int) func([]float32) error {
	return func(buf []float32) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.failed {
			return errors.New("sim world: another rank failed")
		}
		gen := w.gen
		w.bufs[rank] = buf
		w.arrived++
		if w.arrived == len(w.bufs) {
			sum := make([]float32, len(buf))
			for _, b := range w.bufs {
				if len(b) != len(buf) {
					w.failed = true
					w.cond.Broadcast()
					return fmt.Errorf("sim world: buffers of %d and %d values", len(b), len(buf))
				}
				for i, v := range b {
					sum[i] += v
				}
			}
			if rank == 0 {
				w.bytes += 4 * len(buf)
			}
			w.sum, w.arrived = sum, 0
			w.gen++
			w.cond.Broadcast()
		} else {
			for gen == w.gen && !w.failed {
				w.cond.Wait()
			}
			if w.failed {
				return errors.New("sim world: another rank failed")
			}
		}
		copy(buf, w.sum)
		return nil
	}
}

// fail wakes every waiting rank with an error (a rank's step failed).
func (w *simWorld) fail() {
	w.mu.Lock()
	w.failed = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// TestShardToyMatchesOneProcess is the data-parallel step's key test: the
// toy's small protocol (no batch norm) as 2 ranks of batch 256, simulated
// in one process with an all-reduce among goroutines, against 1 process
// at batch 512, over 50 steps: the ranks stay bit-identical to each other,
// and their losses and weights match the single process to fp32
// summation tolerance (the ranks sum each gradient in two halves, the
// single process in one). A second case packs pairs and adds annealed
// instance noise, whose sharded draws are two half-dispatches.
func TestShardToyMatchesOneProcess(t *testing.T) {
	d := newTestDevice(t)
	const ranks, steps = 2, 50
	for _, c := range []struct {
		name  string
		batch int // per rank
		pack  int
		noise float32
	}{
		{"small", 256, 1, 0},
		{"pack2-noise", 64, 2, 0.1},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := smallToy(256, 128, ranks*c.batch, c.pack)
			base.InstanceNoise, base.NoiseUntil = c.noise, 2*steps
			one, err := d.NewToyGAN(base)
			require.NoError(t, err)
			defer one.Release()
			require.NoError(t, one.Init(3))
			var want []ToyLosses
			for range steps {
				require.NoError(t, one.Step())
				l, err := one.ReadLosses()
				require.NoError(t, err)
				want = append(want, l)
			}

			world := newSimWorld(ranks)
			gans := make([]*ToyGAN, ranks)
			for k := range gans {
				cfg := base
				cfg.Batch = c.batch
				cfg.Shard = Shard{Rank: k, Size: ranks, Reduce: world.reduce(k)}
				gans[k], err = d.NewToyGAN(cfg)
				require.NoError(t, err)
				defer gans[k].Release()
				require.NoError(t, gans[k].Init(3))
			}
			got := make([][]ToyLosses, ranks)
			errs := make([]error, ranks)
			var wg sync.WaitGroup
			for k, g := range gans {
				wg.Go(func() {
					for range steps {
						if errs[k] = g.Step(); errs[k] != nil {
							world.fail()
							return
						}
						l, err := g.ReadLosses()
						if errs[k] = err; err != nil {
							world.fail()
							return
						}
						got[k] = append(got[k], l)
					}
				})
			}
			wg.Wait()
			for k := range errs {
				require.NoError(t, errs[k], "rank %d", k)
			}
			// 50 steps of Adam from gradients summed in another order:
			// losses within 1e-4 relative, weights within 1e-4.
			for s := range steps {
				for k := range ranks {
					require.InEpsilon(t, want[s].D, got[k][s].D, 1e-4, "step %d rank %d D loss", s, k)
					require.InEpsilon(t, want[s].G, got[k][s].G, 1e-4, "step %d rank %d G loss", s, k)
				}
			}
			maxDiff := 0.0
			for _, net := range []func(*ToyGAN) *ParamSet{
				func(g *ToyGAN) *ParamSet { return g.G.Params },
				func(g *ToyGAN) *ParamSet { return g.D.Params },
			} {
				ref := download(t, net(one).Flat)
				r0 := download(t, net(gans[0]).Flat)
				for k := 1; k < ranks; k++ {
					rk := download(t, net(gans[k]).Flat)
					for i := range r0 {
						require.Equal(t, math.Float32bits(r0[i]), math.Float32bits(rk[i]), "rank %d weight %d differs from rank 0's", k, i)
					}
				}
				for i := range ref {
					diff := math.Abs(float64(ref[i] - r0[i]))
					maxDiff = max(maxDiff, diff)
					require.LessOrEqual(t, diff, 1e-4+1e-4*math.Abs(float64(ref[i])), "weight %d", i)
				}
			}
			t.Logf("%d steps: final losses D %.6f/%.6f G %.6f/%.6f (1 process/2 ranks); largest weight difference %.2e; %d bytes all-reduced per rank per step",
				steps, want[steps-1].D, got[0][steps-1].D, want[steps-1].G, got[0][steps-1].G, maxDiff, world.bytes/steps)
		})
	}
}

// TestShardDCGANSyncAndStats runs a DCGAN with batch norm as 2 simulated
// ranks: rank 1 starts from other weights and takes rank 0's through
// SyncState; after steps the ranks' checksums agree (batch norm's batch
// statistics differ between the shards, yet the averaged gradients make
// the same update), their running statistics differ until AverageStats
// makes both the float64 mean of the two.
func TestShardDCGANSyncAndStats(t *testing.T) {
	d := newTestDevice(t)
	model := DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3}
	data, err := d.UploadData(randomData(1, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	ad := DefaultAdam()
	ad.LR, ad.Beta1 = 2e-4, 0.5
	world := newSimWorld(2)
	gans := make([]*GAN, 2)
	for k := range gans {
		gans[k], err = d.NewGAN(GANConfig{Model: model, Batch: 4, Seed: 7, AdamD: ad, AdamG: ad, EMA: 0.9,
			Shard: Shard{Rank: k, Size: 2, Reduce: world.reduce(k)}}, data)
		require.NoError(t, err)
		defer gans[k].Release()
		require.NoError(t, gans[k].Init(uint64(k+1)))
	}
	c0, err := gans[0].Checksum()
	require.NoError(t, err)
	c1, err := gans[1].Checksum()
	require.NoError(t, err)
	require.NotEqual(t, c0, c1, "different seeds, different weights")
	var sent [][]float32
	require.NoError(t, gans[0].SyncState(func(b []float32) error { sent = append(sent, slices.Clone(b)); return nil }))
	require.NoError(t, gans[1].SyncState(func(b []float32) error {
		copy(b, sent[0])
		sent = sent[1:]
		return nil
	}))
	both := func(fn func(g *GAN) error) {
		t.Helper()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for k, g := range gans {
			wg.Go(func() {
				if errs[k] = fn(g); errs[k] != nil {
					world.fail()
				}
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
	}
	for range 3 {
		both(func(g *GAN) error { return g.Step() })
		c0, err := gans[0].Checksum()
		require.NoError(t, err)
		c1, err := gans[1].Checksum()
		require.NoError(t, err)
		require.Equal(t, c0, c1, "ranks' state after a step")
	}
	s0, s1 := download(t, gans[0].D.Stats.Flat), download(t, gans[1].D.Stats.Flat)
	require.NotEqual(t, s0, s1, "each rank's running statistics follow its shard")
	g0, g1 := download(t, gans[0].G.Stats.Flat), download(t, gans[1].G.Stats.Flat)
	both(func(g *GAN) error { return g.AverageStats() })
	for _, c := range []struct {
		a, b []float32
		got  *Tensor
	}{{s0, s1, gans[0].D.Stats.Flat}, {s0, s1, gans[1].D.Stats.Flat}, {g0, g1, gans[0].G.Stats.Flat}, {g0, g1, gans[1].G.Stats.Flat}} {
		want := make([]float64, len(c.a))
		for i := range want {
			want[i] = (float64(c.a[i]) + float64(c.b[i])) / 2
		}
		assertClose(t, "averaged statistics", want, download(t, c.got), 1e-6, 1e-7)
	}
}

// TestShardConfigErrors: a bad rank, ranks without Reduce, and DiffAugment
// (whose parameters are not sharded) are refused before anything is
// allocated.
func TestShardConfigErrors(t *testing.T) {
	d := newTestDevice(t)
	model := DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3}
	data, err := d.UploadData(randomData(1, 4, 3, 16), 4, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	sum := func([]float32) error { return nil }
	aug, err := ParseAugment("translation", false)
	require.NoError(t, err)
	for _, c := range []struct {
		shard Shard
		aug   Augment
		want  string
	}{
		{Shard{Rank: 2, Size: 2, Reduce: sum}, Augment{}, "is not a rank"},
		{Shard{Rank: 1, Size: 0}, Augment{}, "is not a rank"},
		{Shard{Rank: 0, Size: 2}, Augment{}, "need a Reduce function"},
		{Shard{Rank: 0, Size: 2, Reduce: sum}, aug, "not sharded across ranks"},
	} {
		_, err := d.NewGAN(GANConfig{Model: model, Batch: 2, Augment: c.aug, AdamD: DefaultAdam(), AdamG: DefaultAdam(), Shard: c.shard}, data)
		require.ErrorContains(t, err, c.want, "%+v", c.shard)
	}
}
