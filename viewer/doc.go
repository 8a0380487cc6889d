// Package viewer is the window of `vkgan view`: G's samples drawn straight
// from device memory into a GLFW window's Vulkan swapchain.
//
// Data flow, all on one device: G's forward pass (engine.Sampler) writes
// NCHW floats; the to_bgra compute pass (engine.Painter) turns them into the
// sample grid, scaled to the window with nearest neighbour, as BGRA8 pixels
// in a device buffer; every frame copies that buffer into the acquired
// swapchain image and presents it (vk.Swapchain). G and the paint pass run
// only when the noise, the weights, the grid or the window size change; a
// plain frame is one recorded command buffer replayed, so frames allocate
// nothing. Pixels cross to the host only for a screenshot (S, -screenshot)
// and, for the timeline (T), the saved sample PNGs go the other way.
//
// GLFW must be called from one thread, the main one on some systems: init
// locks the main goroutine to the main OS thread, and Run must be called
// from the main goroutine (a test's goroutine works on X11, where only
// "one thread" matters; Run locks it for its duration).
package viewer
