package vk

import (
	"errors"
	"fmt"

	vulkan "github.com/vulkan-go/vulkan"
)

// Sentinel errors that callers act on. Test with errors.Is.
var (
	// ErrNoDevice: no Vulkan loader, or no usable device.
	ErrNoDevice = errors.New("vk: no Vulkan device")
	// ErrOutOfDeviceMemory: the device (or host, for host-visible memory) ran out.
	ErrOutOfDeviceMemory = errors.New("vk: out of device memory")
	// ErrDeviceLost: the device was lost; the Device must be closed.
	ErrDeviceLost = errors.New("vk: device lost")
	// ErrTooLarge: a buffer larger than the device can bind as one storage buffer.
	ErrTooLarge = errors.New("vk: buffer too large for the device")
	// ErrTimeout: a wait ran past its limit (a hung or very slow dispatch).
	ErrTimeout = errors.New("vk: timeout waiting for the device")
)

// Error is a failed Vulkan call: the call's name and its VkResult.
type Error struct {
	Call   string
	Result vulkan.Result
}

func (e *Error) Error() string {
	return fmt.Sprintf("vk: %s: %s", e.Call, resultName(e.Result))
}

// Is maps results to the package's sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfDeviceMemory:
		return e.Result == vulkan.ErrorOutOfDeviceMemory || e.Result == vulkan.ErrorOutOfHostMemory
	case ErrDeviceLost:
		return e.Result == vulkan.ErrorDeviceLost
	case ErrTimeout:
		return e.Result == vulkan.Timeout
	case ErrNoDevice:
		// What the loader answers when no driver (ICD) is installed.
		return e.Result == vulkan.ErrorIncompatibleDriver || e.Result == vulkan.ErrorInitializationFailed
	}
	return false
}

// check turns a VkResult into nil or an *Error naming the call.
func check(call string, r vulkan.Result) error {
	if r == vulkan.Success {
		return nil
	}
	return &Error{Call: call, Result: r}
}

func resultName(r vulkan.Result) string {
	switch r {
	case vulkan.NotReady:
		return "VK_NOT_READY"
	case vulkan.Timeout:
		return "VK_TIMEOUT"
	case vulkan.Incomplete:
		return "VK_INCOMPLETE"
	case vulkan.ErrorOutOfHostMemory:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case vulkan.ErrorOutOfDeviceMemory:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case vulkan.ErrorInitializationFailed:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case vulkan.ErrorDeviceLost:
		return "VK_ERROR_DEVICE_LOST"
	case vulkan.ErrorMemoryMapFailed:
		return "VK_ERROR_MEMORY_MAP_FAILED"
	case vulkan.ErrorLayerNotPresent:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case vulkan.ErrorExtensionNotPresent:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case vulkan.ErrorFeatureNotPresent:
		return "VK_ERROR_FEATURE_NOT_PRESENT"
	case vulkan.ErrorIncompatibleDriver:
		return "VK_ERROR_INCOMPATIBLE_DRIVER"
	case vulkan.ErrorTooManyObjects:
		return "VK_ERROR_TOO_MANY_OBJECTS"
	case vulkan.ErrorFormatNotSupported:
		return "VK_ERROR_FORMAT_NOT_SUPPORTED"
	}
	return fmt.Sprintf("VkResult(%d)", int32(r))
}
