// Package quality holds vkgan's image-quality metrics: SWD, KID and FID.
// It owns the host-side math of each (float64 feature statistics and the
// Fréchet distance between them, the polynomial-kernel MMD of KID, the
// sliced Wasserstein distance of Laplacian pyramids) and the cache of a
// data set's reference statistics; the images and the feature extractor's
// outputs come in as float32 slices from the caller, usually downloaded from
// the device batch by batch. Nothing here waits on the device except SWD
// when it is given one to project on; FID's and KID's costs are host CPU
// time, stated on Stats, FID and KID.
package quality
