package engine

import (
	"math"
	"math/bits"
	"testing"

	"github.com/stretchr/testify/require"
)

// philoxRef is Philox4x32-10 as in rng.comp.
func philoxRef(c [4]uint32, k [2]uint32) [4]uint32 {
	for range 10 {
		hi0, lo0 := bits.Mul32(0xD2511F53, c[0])
		hi1, lo1 := bits.Mul32(0xCD9E8D57, c[2])
		c = [4]uint32{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0}
		k[0] += 0x9E3779B9
		k[1] += 0xBB67AE85
	}
	return c
}

func unitRef(w uint32) float32 { return (float32(w>>9) + 0.5) * (1.0 / 8388608.0) }

// randRef computes n values of the rng kernel on the host: uniform in
// [a, b] or normal with mean a and std b.
func randRef(normal bool, n int, seed uint64, step uint32, a, b float32) []float64 {
	out := make([]float64, n)
	for i := range out {
		w := philoxRef([4]uint32{uint32(i / 4), step, 0, 0}, [2]uint32{uint32(seed), uint32(seed >> 32)})
		if !normal {
			out[i] = float64(float32(unitRef(w[i%4])*(b-a)) + a)
			continue
		}
		pair := (i % 4) / 2
		r := math.Sqrt(-2 * math.Log(float64(unitRef(w[2*pair]))))
		th := 2 * math.Pi * float64(unitRef(w[2*pair+1]))
		z := r * math.Cos(th)
		if i%2 == 1 {
			z = r * math.Sin(th)
		}
		out[i] = z*float64(b) + float64(a)
	}
	return out
}

// TestPhiloxKnownAnswer pins the host reference to the Random123 known
// answers for Philox4x32-10 (all-zero and all-ones counter and key).
func TestPhiloxKnownAnswer(t *testing.T) {
	got := philoxRef([4]uint32{0, 0, 0, 0}, [2]uint32{0, 0})
	require.Equal(t, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, got)
	got = philoxRef([4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff})
	require.Equal(t, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}, got)
}

func newCounterT(t *testing.T, d *Device, v uint32) *Counter {
	t.Helper()
	c, err := d.NewCounter()
	require.NoError(t, err)
	t.Cleanup(c.Release)
	require.NoError(t, c.Set(v))
	return c
}

func TestRandMatchesReference(t *testing.T) {
	d := newTestDevice(t)
	const seed = 0x123456789abcdef0
	for _, n := range []int{1, 2, 7, 13, 4099} {
		step := newCounterT(t, d, 41)
		u, z := zeros(t, d, n), zeros(t, d, n)
		run(t, d, func(r *Recorder) error {
			if err := r.RandUniform(u, seed, step, -2, 3); err != nil {
				return err
			}
			return r.RandNormal(z, seed, step, 0.5, 2)
		})
		assertClose(t, "uniform", randRef(false, n, seed, 41, -2, 3), download(t, u), 1e-6, 1e-6)
		// GPU log/sqrt/cos/sin are a few ulps; |z| <= 5.8*std.
		assertClose(t, "normal", randRef(true, n, seed, 41, 0.5, 2), download(t, z), 1e-5, 2e-5)
	}
}

func TestRandStatistics(t *testing.T) {
	d := newTestDevice(t)
	const n = 1000000
	step := newCounterT(t, d, 0)
	u, z := zeros(t, d, n), zeros(t, d, n)
	run(t, d, func(r *Recorder) error {
		if err := r.RandUniform(u, 99, step, -2, 3); err != nil {
			return err
		}
		return r.RandNormal(z, 99, step, 1, 3)
	})
	moments := func(v []float32) (mean, variance float64) {
		for _, x := range v {
			mean += float64(x)
		}
		mean /= float64(len(v))
		for _, x := range v {
			variance += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, variance / float64(len(v)-1)
	}
	uv := download(t, u)
	for i, x := range uv {
		if x < -2 || x > 3 {
			t.Fatalf("uniform[%d] = %g outside [-2, 3]", i, x)
		}
	}
	// Bounds are 5 standard errors: var/n for the mean, and for the
	// variance sqrt((mu4 - sigma^4)/n) (uniform mu4 = 9/5 sigma^4, normal 3).
	m, v := moments(uv)
	sigma2 := 25.0 / 12
	require.InDelta(t, 0.5, m, 5*math.Sqrt(sigma2/n), "uniform mean")
	require.InDelta(t, sigma2, v, 5*sigma2*math.Sqrt(0.8/n), "uniform variance")
	zv := download(t, z)
	m, v = moments(zv)
	require.InDelta(t, 1, m, 5*math.Sqrt(9.0/n), "normal mean")
	require.InDelta(t, 9, v, 5*9*math.Sqrt(2.0/n), "normal variance")
	within := 0
	for _, x := range zv {
		require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0), "normal value %g", x)
		if math.Abs(float64(x)-1) < 3 {
			within++
		}
	}
	// P(|Z| < 1) = 0.682689; binomial standard error ~4.7e-4.
	require.InDelta(t, 0.682689, float64(within)/n, 5*4.7e-4, "normal mass within one std")
}

// TestRandReplay records one command buffer that draws and increments the
// counter, and checks each submit gives the next batch, reproducibly.
func TestRandReplay(t *testing.T) {
	d := newTestDevice(t)
	const n, seed = 1000, 7
	step := newCounterT(t, d, 0)
	x := zeros(t, d, n)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.NoError(t, r.RandNormal(x, seed, step, 0, 1))
	require.NoError(t, r.Increment(step))
	var batches [][]float32
	for s := range uint32(3) {
		require.NoError(t, r.Submit())
		got := download(t, x)
		assertClose(t, "replayed normal", randRef(true, n, seed, s, 0, 1), got, 1e-5, 2e-5)
		batches = append(batches, got)
	}
	same := 0
	for i := range batches[0] {
		if batches[0][i] == batches[1][i] {
			same++
		}
	}
	require.Less(t, same, 5, "steps 0 and 1 gave %d equal values of %d", same, n)
	// Rewinding the counter reproduces a batch bit for bit.
	require.NoError(t, step.Set(1))
	require.NoError(t, r.Submit())
	require.Equal(t, batches[1], download(t, x))
}

// TestAddAnnealedNoise replays one recording at steps before, inside and
// past the annealing: x gains RandNormal's draws times std*(1 - t/until),
// and nothing once t >= until.
func TestAddAnnealedNoise(t *testing.T) {
	d := newTestDevice(t)
	const seed, std, until = 99, 0.75, 40
	for _, n := range []int{3, 13, 4099} {
		base := make([]float32, n)
		for i := range base {
			base[i] = float32(i%17) - 8
		}
		x := zeros(t, d, n)
		step := newCounterT(t, d, 0)
		r, err := d.Record()
		require.NoError(t, err)
		require.NoError(t, r.AddAnnealedNoise(x, seed, step, std, until))
		for _, s := range []uint32{0, 1, 10, 39, 40, 1000} {
			require.NoError(t, step.Set(s))
			require.NoError(t, x.Upload(base))
			require.NoError(t, r.Submit())
			sigma := std * max(0, 1-float64(s)/until)
			want := randRef(true, n, seed, s, 0, 1)
			for i := range want {
				want[i] = float64(base[i]) + sigma*want[i]
			}
			assertClose(t, "noisy x", want, download(t, x), 1e-5, 2e-5)
		}
		r.Release()
	}
}

func TestRandBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, step := zeros(t, d, 8), newCounterT(t, d, 0)
	nan := float32(math.NaN())
	for name, fn := range map[string]func(r *Recorder) error{
		"nil x":         func(r *Recorder) error { return r.RandUniform(nil, 1, step, 0, 1) },
		"nil step":      func(r *Recorder) error { return r.RandNormal(x, 1, nil, 0, 1) },
		"lo > hi":       func(r *Recorder) error { return r.RandUniform(x, 1, step, 1, 0) },
		"nan lo":        func(r *Recorder) error { return r.RandUniform(x, 1, step, nan, 0) },
		"negative std":  func(r *Recorder) error { return r.RandNormal(x, 1, step, 0, -1) },
		"infinite mean": func(r *Recorder) error { return r.RandNormal(x, 1, step, float32(math.Inf(-1)), 1) },
		"noise std":     func(r *Recorder) error { return r.AddAnnealedNoise(x, 1, step, -1, 10) },
		"noise until":   func(r *Recorder) error { return r.AddAnnealedNoise(x, 1, step, 1, 0) },
		"noise nan":     func(r *Recorder) error { return r.AddAnnealedNoise(x, 1, step, nan, 10) },
	} {
		rec, err := d.Record()
		require.NoError(t, err)
		require.Error(t, fn(rec), name)
		rec.Release()
	}
}
