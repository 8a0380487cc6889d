package vk

// DefaultIndex returns the index into infos of the device that Open would
// pick for selector: a device index ("1"), a case-insensitive substring of
// a device name ("llvmpipe"), or "" for the best type (discrete >
// integrated > virtual > CPU). Unlike Open it does not read VKGAN_DEVICE;
// pass os.Getenv("VKGAN_DEVICE") to follow it. Errors wrap ErrNoDevice.
func DefaultIndex(infos []DeviceInfo, selector string) (int, error) {
	return choose(infos, selector)
}
