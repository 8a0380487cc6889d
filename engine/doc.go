// Package engine is vkgan's tensor library: float32 tensors that live on a
// Vulkan device (vk) and ops that record GLSL compute kernels (shaders)
// into a command buffer.
//
// Data flow and costs: Device.NewTensor and FromSlice allocate device
// memory; Upload and Download are the only host copies. A Recorder
// validates each op's arguments before recording it (a bad shape is an
// error, never a wrong dispatch), records one dispatch plus a barrier per
// op, and is submitted once or many times; Submit waits for the device.
// A training step is recorded once and replayed: values that change from
// step to step (the step counter, RNG offsets) live on the device and are
// advanced by kernels, so the host submits one command buffer and waits on
// one fence per step.
//
// Data-parallel training (GANConfig.Shard) is the exception: each rank's
// step is recorded in segments cut before every Adam update; a segment
// ends by copying the network's gradients into a mapped host-visible
// staging buffer, the host sums it over the ranks in place (Shard.Reduce,
// an MPI all-reduce), scales it by 1/ranks, and the next segment copies it
// back. The host then waits on one fence per segment, and the device idles
// during each all-reduce.
//
// Kernels are specialised per device class (ClassCPU for lavapipe, whose
// loads are per-lane scalar loops; ClassGPU otherwise), and pipelines are
// built on first use and cached for the device's lifetime.
package engine
