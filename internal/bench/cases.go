package bench

import (
	"fmt"

	"vkgan/engine"
)

// Cases returns every benchmark case in report order: GEMM, the DCGAN
// 64x64 discriminator's convolutions (forward, backward-data,
// backward-weights), the generator's transposed convolutions, then the
// small kernels.
func Cases() []Case {
	var cs []Case
	cs = append(cs,
		gemm("matmul", 1024, 1024, 1024, false, false),
		gemm("matmul_tn", 1024, 1024, 1024, true, false),
		gemm("matmul_nt", 1024, 1024, 1024, false, true),
	)
	for _, l := range dcganD {
		cs = append(cs, l.forward())
	}
	for _, l := range dcganD {
		cs = append(cs, l.backwardData())
	}
	for _, l := range dcganD {
		cs = append(cs, l.backwardWeights())
	}
	for _, l := range dcganG {
		cs = append(cs, l.transposed())
	}
	return append(cs, small...)
}

// small holds elementwise, batch-norm and optimizer kernels. Adding one is
// one row: the tensors it touches (random-filled), its FLOPs per run (0 for
// pure data movement) and the op.
var small = []Case{
	{Kernel: "fill", Shape: "16M", Tensors: [][]int{{16 << 20}}, Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error { return r.Fill(t[0], 1) }},
	{Kernel: "axpy", Shape: "16M", Tensors: [][]int{{16 << 20}, {16 << 20}}, Flops: 2 * 16 << 20,
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.Axpy(t[0], t[1], 0.5)
		}},
	{Kernel: "leaky_relu", Shape: "64x128x16x16", Tensors: [][]int{{64, 128, 16, 16}, {64, 128, 16, 16}},
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.LeakyReLU(t[0], t[1], 0.2)
		}},
	{Kernel: "batchnorm_train", Shape: "64x128x16x16", Tensors: [][]int{{64, 128, 16, 16}, {64, 128, 16, 16}, {128}, {128}, {128}, {128}, {128}, {128}},
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.BatchNormTrain(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0.1, 1e-5)
		}},
	{Kernel: "batchnorm_backward", Shape: "64x128x16x16", Tensors: [][]int{{64, 128, 16, 16}, {128}, {128}, {64, 128, 16, 16}, {64, 128, 16, 16}, {128}, {128}, {128}},
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.BatchNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])
		}},
	{Kernel: "adam", Shape: "3.5M", Tensors: [][]int{{3576704}, {3576704}, {3576704}, {3576704}}, Flops: 3576704 * 14,
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			// t[4] is a step counter holding a random float's bits; Adam
			// treats any value as a step number, which is all timing needs.
			return r.AdamStep(t[0], t[1], t[2], t[3], step, engine.DefaultAdam())
		}},
	{Kernel: "rand_normal", Shape: "16M", Tensors: [][]int{{16 << 20}},
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.RandNormal(t[0], 1, step, 0, 1)
		}},
}

// gemm is C[m,n] = op(A)*op(B) with op(A) m x k and op(B) k x n; 2mnk FLOPs.
func gemm(kernel string, m, n, k int, transA, transB bool) Case {
	as, bs := []int{m, k}, []int{k, n}
	if transA {
		as = []int{k, m}
	}
	if transB {
		bs = []int{n, k}
	}
	return Case{
		Kernel:  kernel,
		Shape:   fmt.Sprintf("%dx%dx%d", m, n, k),
		Tensors: [][]int{{m, n}, as, bs},
		Flops:   2 * float64(m) * float64(n) * float64(k),
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			if !transA && !transB {
				return r.MatMul(t[0], t[1], t[2])
			}
			return r.Gemm(t[0], t[1], t[2], transA, transB, 1, 0, nil)
		},
	}
}

// convLayer is a square 2D convolution: x [n,cin,h,h], w [cout,cin,k,k].
// For a transposed convolution (the generator) cin, h are its input and
// cout its output channels, with w [cin,cout,k,k] as in PyTorch.
type convLayer struct{ n, cin, h, cout, k, s, p int }

// The DCGAN 64x64 networks at batch 64 (PyTorch DCGAN example, nc=3,
// nz=100, ngf=ndf=64).
var (
	dcganD = []convLayer{
		{64, 3, 64, 64, 4, 2, 1},
		{64, 64, 32, 128, 4, 2, 1},
		{64, 128, 16, 256, 4, 2, 1},
		{64, 256, 8, 512, 4, 2, 1},
		{64, 512, 4, 1, 4, 1, 0},
	}
	dcganG = []convLayer{
		{64, 100, 1, 512, 4, 1, 0},
		{64, 512, 4, 256, 4, 2, 1},
		{64, 256, 8, 128, 4, 2, 1},
		{64, 128, 16, 64, 4, 2, 1},
		{64, 64, 32, 3, 4, 2, 1},
	}
)

func (l convLayer) params() engine.ConvParams {
	return engine.ConvParams{StrideH: l.s, StrideW: l.s, PadH: l.p, PadW: l.p}
}

func (l convLayer) shape() string {
	return fmt.Sprintf("%dx%dx%dx%d->%d k%ds%dp%d", l.n, l.cin, l.h, l.h, l.cout, l.k, l.s, l.p)
}

// convOut is a convolution's output size; deconvOut a transposed one's.
func (l convLayer) convOut() int   { return (l.h+2*l.p-l.k)/l.s + 1 }
func (l convLayer) deconvOut() int { return (l.h-1)*l.s - 2*l.p + l.k }

// convFlops is 2*N*Cout*OH*OW*Cin*KH*KW, the multiply-adds of the forward
// convolution; its two backward passes do the same work.
func convFlops(n, cin, cout, oh, k int) float64 {
	return 2 * float64(n) * float64(cout) * float64(oh) * float64(oh) * float64(cin) * float64(k) * float64(k)
}

func (l convLayer) forward() Case {
	o := l.convOut()
	return Case{
		Kernel:  "conv",
		Shape:   l.shape(),
		Tensors: [][]int{{l.n, l.cout, o, o}, {l.n, l.cin, l.h, l.h}, {l.cout, l.cin, l.k, l.k}},
		Flops:   convFlops(l.n, l.cin, l.cout, o, l.k),
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.Conv2D(t[0], t[1], t[2], l.params())
		},
	}
}

func (l convLayer) backwardData() Case {
	o := l.convOut()
	return Case{
		Kernel:  "conv_bwd_data",
		Shape:   l.shape(),
		Tensors: [][]int{{l.n, l.cin, l.h, l.h}, {l.n, l.cout, o, o}, {l.cout, l.cin, l.k, l.k}},
		Flops:   convFlops(l.n, l.cin, l.cout, o, l.k),
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.Conv2DBackwardData(t[0], t[1], t[2], l.params())
		},
	}
}

func (l convLayer) backwardWeights() Case {
	o := l.convOut()
	return Case{
		Kernel:  "conv_bwd_weights",
		Shape:   l.shape(),
		Tensors: [][]int{{l.cout, l.cin, l.k, l.k}, {l.n, l.cout, o, o}, {l.n, l.cin, l.h, l.h}},
		Flops:   convFlops(l.n, l.cin, l.cout, o, l.k),
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.Conv2DBackwardWeights(t[0], t[1], t[2], l.params())
		},
	}
}

// transposed is the generator's ConvTranspose2D. Its work is that of the
// convolution it transposes (output size = this layer's input size):
// 2*N*Cin*H*W*Cout*K*K, each input pixel scattered into K*K outputs per
// output channel.
func (l convLayer) transposed() Case {
	o := l.deconvOut()
	return Case{
		Kernel:  "deconv",
		Shape:   l.shape(),
		Tensors: [][]int{{l.n, l.cout, o, o}, {l.n, l.cin, l.h, l.h}, {l.cin, l.cout, l.k, l.k}},
		Flops:   convFlops(l.n, l.cout, l.cin, l.h, l.k),
		Op: func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error {
			return r.ConvTranspose2D(t[0], t[1], t[2], l.params())
		},
	}
}
