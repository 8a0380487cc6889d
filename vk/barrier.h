// C helpers shared by the cgo preambles of loader.go and swapchain.go
// (each preamble is its own translation unit, so they come in by header).
#ifndef VKG_BARRIER_H
#define VKG_BARRIER_H
#include <string.h>
#include <vulkan/vulkan.h>

// vkg_global_barrier records one global memory barrier through f.
static inline void vkg_global_barrier(PFN_vkCmdPipelineBarrier f, VkCommandBuffer cb, VkPipelineStageFlags srcStages,
		VkPipelineStageFlags dstStages, VkAccessFlags srcAccess, VkAccessFlags dstAccess) {
	VkMemoryBarrier b;
	memset(&b, 0, sizeof b);
	b.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
	b.srcAccessMask = srcAccess;
	b.dstAccessMask = dstAccess;
	f(cb, srcStages, dstStages, 0, 1, &b, 0, NULL, 0, NULL);
}
#endif
