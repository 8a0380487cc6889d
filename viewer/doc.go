// Package viewer will hold the GLFW window that shows the generator's
// samples straight from device memory (a copy or compute pass into the
// swapchain image on the same Vulkan device), beside or inside a training
// run, plus the 2D toy mode's decision-field view. GLFW stays pinned to the
// main OS thread. Nothing lives here yet.
package viewer
