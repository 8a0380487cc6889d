package engine

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"vkgan/internal/devtest"
	"vkgan/vk"
)

// One device serves the whole package: opening an instance costs ~100 ms
// (more with validation) and lavapipe already uses every core per dispatch,
// so device tests run serially.
var testDevice = devtest.New(func(onMessage func(string)) (*Device, error) {
	return Open(vk.Options{OnMessage: onMessage})
})

func TestMain(m *testing.M) { os.Exit(testDevice.Main(m)) }

// newTestDevice returns the shared test device (see devtest.Shared.Get).
func newTestDevice(t testing.TB) *Device {
	t.Helper()
	return testDevice.Get(t)
}

// tensorOf uploads data as a tensor released at the end of the test.
func tensorOf(t testing.TB, d *Device, data []float32, shape ...int) *Tensor {
	t.Helper()
	x, err := d.FromSlice(data, shape...)
	if err != nil {
		t.Fatalf("tensor %v: %v", shape, err)
	}
	t.Cleanup(x.Release)
	return x
}

// zeros allocates a zero tensor released at the end of the test.
func zeros(t testing.TB, d *Device, shape ...int) *Tensor {
	t.Helper()
	x, err := d.NewTensor(shape...)
	if err != nil {
		t.Fatalf("tensor %v: %v", shape, err)
	}
	t.Cleanup(x.Release)
	return x
}

func download(t testing.TB, x *Tensor) []float32 {
	t.Helper()
	v, err := x.Download()
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	return v
}

// run records fn, submits it once and fails the test on any error.
func run(t testing.TB, d *Device, fn func(r *Recorder) error) {
	t.Helper()
	if err := d.Run(fn); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// randSlice returns n values uniform in [-1, 1) from a seeded source.
func randSlice(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.Float64()*2 - 1)
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// assertClose checks got against the float64 reference with
// |got-want| <= atol + rtol*|want| per element.
func assertClose(t testing.TB, name string, want []float64, got []float32, rtol, atol float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	bad := 0
	for i := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.Abs(g-want[i]) > atol+rtol*math.Abs(want[i]) {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g (diff %.3g)", name, i, g, want[i], g-want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance (rtol %g, atol %g)", name, bad, len(want), rtol, atol)
	}
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// keeper returns a keep function for Bind whose tensors the test's
// cleanup releases.
func keeper(t testing.TB) func(*Tensor) {
	var owned []*Tensor
	t.Cleanup(func() {
		for _, x := range owned {
			x.Release()
		}
	})
	return func(x *Tensor) { owned = append(owned, x) }
}
