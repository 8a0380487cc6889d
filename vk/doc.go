// Package vk is vkgan's thin layer over Vulkan compute: it is the only
// package that imports the cgo binding (github.com/vulkan-go/vulkan).
//
// It loads the loader by its soname (libvulkan.so.1, so the runtime package
// alone is enough), lists devices (Devices) and opens one (Open) with a
// single compute queue, choosing discrete > integrated > virtual > CPU
// unless Options.Device or VKGAN_DEVICE names one by index or name. With
// Options.Validate or VKGAN_VALIDATE=1 the Khronos validation layer is on
// and its messages go to Options.OnMessage.
//
// Memory: buffers are regions sub-allocated from 1 MiB blocks (each one
// VkDeviceMemory bound to one VkBuffer; a buffer over half a block gets its
// own, and near half the driver's allocation cap blocks grow to 16 MiB), so
// a training step binds a few dozen buffers and holds within about 1% of
// what they ask for. Device.MemoryStats counts what is held against what
// buffers asked for, and the allocations.
// On devices that share memory with the host (lavapipe, integrated GPUs)
// the blocks are persistently mapped and Buffer.Write/Read are memcpys;
// elsewhere they go through a staging buffer and one submit each.
//
// Work: a Recorder records dispatches, barriers, copies and timestamps into
// one command buffer that can be submitted any number of times; Submit
// waits for it on a fence through C function pointers, so the per-step
// path allocates nothing. Recording errors are sticky and returned by End.
// A recorder keeps the buffers it uses in mind, and Submit refuses to run
// it once one of them is released: on a CPU driver device memory is the
// process's heap, and the commands would write into freed memory.
//
// Arrays: vulkan-go frees the C copies of the arrays it marshals from a
// finalizer that may run while the driver is still reading or writing
// them. Every call that passes an array (create infos, enumerations,
// descriptor writes, barriers) is therefore made from C (cinfo.go,
// loader.go, swapchain.go) with arrays on the C stack or in memory it frees.
//
// Lifetimes: every object has one owner. Release is idempotent and safe on
// nil; Device.Close waits idle, releases whatever callers did not, saves the
// pipeline cache and reports a lost device. Vulkan failures are *Error
// values naming the call; errors.Is maps them to ErrOutOfDeviceMemory,
// ErrDeviceLost and ErrTimeout.
package vk
