package engine

import (
	"testing"
)

var bnBenchShapes = []struct {
	name  string
	shape []int
}{
	{"64x128x16x16", []int{64, 128, 16, 16}},
	{"64x64x32x32", []int{64, 64, 32, 32}},
	{"64x256x8x8", []int{64, 256, 8, 8}},
	{"64x7x7x7", []int{64, 7, 7, 7}}, // odd plane: scalar-load kernel
}

func BenchmarkBatchNormTrain(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range bnBenchShapes {
		b.Run(s.name, func(b *testing.B) {
			c := s.shape[1]
			x := tensorOf(b, d, randSlice(newRand(1), numelOf(s.shape)), s.shape...)
			y := zeros(b, d, s.shape...)
			g, be, rm, rv, sm, si := zeros(b, d, c), zeros(b, d, c), zeros(b, d, c), zeros(b, d, c), zeros(b, d, c), zeros(b, d, c)
			// x read twice, y written once.
			benchGPU(b, d, int64(12*x.Len()), func(r *Recorder) error {
				return r.BatchNormTrain(y, x, g, be, rm, rv, sm, si, 0.1, 1e-5)
			})
		})
	}
}

func BenchmarkBatchNormBackward(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range bnBenchShapes {
		b.Run(s.name, func(b *testing.B) {
			c := s.shape[1]
			rng := newRand(2)
			x := tensorOf(b, d, randSlice(rng, numelOf(s.shape)), s.shape...)
			dy := tensorOf(b, d, randSlice(rng, numelOf(s.shape)), s.shape...)
			dx := zeros(b, d, s.shape...)
			g, sm, si, dg, db := zeros(b, d, c), zeros(b, d, c), zeros(b, d, c), zeros(b, d, c), zeros(b, d, c)
			// x and dy read twice, dx written once.
			benchGPU(b, d, int64(20*x.Len()), func(r *Recorder) error {
				return r.BatchNormBackward(dx, dg, db, dy, x, g, sm, si)
			})
		})
	}
}

func BenchmarkAdam(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range []struct {
		name string
		n    int
	}{{"3.5M", 3_500_000}, {"2.8M", 2_800_000}} { // DCGAN G and D parameter counts
		b.Run(s.name, func(b *testing.B) {
			p := tensorOf(b, d, randSlice(newRand(3), s.n), s.n)
			g := tensorOf(b, d, randSlice(newRand(4), s.n), s.n)
			m, v := zeros(b, d, s.n), zeros(b, d, s.n)
			step, err := d.NewCounter()
			if err != nil {
				b.Fatal(err)
			}
			defer step.Release()
			if err := step.Set(1); err != nil {
				b.Fatal(err)
			}
			// param, m, v read and written, grad read.
			benchGPU(b, d, int64(28*s.n), func(r *Recorder) error {
				return r.AdamStep(p, g, m, v, step, DefaultAdam())
			})
		})
	}
}

func numelOf(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// BenchmarkGANStepBNAct times the DCGAN step with batch norm and the
// activation after it in separate kernels (forceNoBNActFusion) and fused,
// in one process, alternating steps (see benchGANStepAB).
func BenchmarkGANStepBNAct(b *testing.B) {
	benchGANStepAB(b, func(*Device) bool { return true }, [2]string{"separate", "fused"}, func(old bool) { forceNoBNActFusion = old })
}

// BenchmarkGANStepConvAct times the DCGAN step with the activations next
// to convolutions (D's first LeakyReLU, G's tanh) in kernels of their own
// (forceNoConvActFusion) and in the convolutions' epilogues.
func BenchmarkGANStepConvAct(b *testing.B) {
	benchGANStepAB(b, func(*Device) bool { return true }, [2]string{"separate", "fused"}, func(old bool) { forceNoConvActFusion = old })
}

// BenchmarkGANStepPackedDerivative times the DCGAN step with D's first
// LeakyReLU's derivative in the packed backward-data's epilogue
// (forceFusedPackedDerivative) and as a pass of its own after it.
func BenchmarkGANStepPackedDerivative(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"in-epilogue", "own-pass"}, func(old bool) { forceFusedPackedDerivative = old })
}
