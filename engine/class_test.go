package engine

import "testing"

// TestGPUClassKernels reruns the kernel tests with the variants chosen for
// GPUs (the shared-memory tiled GEMM core at its default tilings, uncapped
// grids, tree bias gradients), so those code paths are checked against the
// references on lavapipe too, not only on a real GPU.
func TestGPUClassKernels(t *testing.T) {
	d := newTestDevice(t)
	saved := d.class
	d.class = ClassGPU
	defer func() { d.class = saved }()
	for name, fn := range map[string]func(*testing.T){
		"Gemm": TestGemm, "Conv2D": TestConv2D, "Conv2DBackward": TestConv2DBackward, "ConvTranspose2D": TestConvTranspose2D,
		"BiasGrad": TestBiasGrad, "BiasAdd": TestBiasAdd, "ScaleAxpy": TestScaleAxpy, "Activations": TestActivationForward,
		"Rand": TestRandMatchesReference, "GANStep": TestGANStepMatchesReference,
		// The fused epilogue and accumulation through the tiled GEMM core.
		"Conv2DFused": TestConv2DFused, "ConvAccumulate": TestConvAccumulate, "GemmActivation": TestGemmActivation, "GemmRowSums": TestGemmRowSums,
		"ConvActFusion": TestConvActFusion, "LinearActFusion": TestLinearActFusion,
	} {
		t.Run(name, fn)
	}
}
