package engine

import (
	"fmt"
	"math/bits"

	"vkgan/shaders"
)

// maxDataChunks is the number of data-set buffers gather_u8.comp binds.
const maxDataChunks = 4

// DeviceData is an image data set resident on the device as uint8, NCHW,
// split into as many buffers as the device's storage-buffer range needs.
type DeviceData struct {
	N, Channels, Size int
	chunks            []*Tensor
	perChunk          int
	labels            *Tensor // N uint32 class indices (SetLabels); nil: unlabelled
	classes           int
}

// UploadData copies n images of channels x size x size uint8 pixels
// (image-major NCHW) to the device once.
func (d *Device) UploadData(pixels []byte, n, channels, size int) (*DeviceData, error) {
	img := channels * size * size
	if n < 1 || img < 1 || len(pixels) != n*img {
		return nil, fmt.Errorf("engine: data set: %d bytes for %d images of %dx%dx%d", len(pixels), n, channels, size, size)
	}
	maxRange := int(d.info.Limits.MaxStorageBufferRange)
	perChunk := maxRange / img
	if perChunk < 1 {
		return nil, fmt.Errorf("engine: data set: one image of %d bytes exceeds the device's storage-buffer range", img)
	}
	if need := (n + perChunk - 1) / perChunk; need > maxDataChunks {
		return nil, fmt.Errorf("engine: data set of %d images (%d MiB) needs %d buffers on %s; at most %d fit: use fewer images or a smaller -size",
			n, len(pixels)>>20, need, d.info.Name, maxDataChunks)
	}
	dd := &DeviceData{N: n, Channels: channels, Size: size, perChunk: perChunk}
	for start := 0; start < n; start += perChunk {
		end := min(n, start+perChunk)
		raw := pixels[start*img : end*img]
		words := (len(raw) + 3) / 4
		t, err := d.NewTensor(words)
		if err != nil {
			dd.Release()
			return nil, fmt.Errorf("engine: data set: %w", err)
		}
		buf := make([]byte, 4*words)
		copy(buf, raw)
		if err := t.SetBytes(buf); err != nil {
			t.Release()
			dd.Release()
			return nil, err
		}
		dd.chunks = append(dd.chunks, t)
	}
	return dd, nil
}

// Release frees the data set's buffers.
func (dd *DeviceData) Release() {
	if dd == nil {
		return
	}
	for _, c := range dd.chunks {
		c.Release()
	}
	dd.chunks = nil
	dd.labels.Release()
	dd.labels, dd.classes = nil, 0
}

// GatherBatch records out = batch number counter of the data set, scaled
// to [-1, 1]: images at positions counter*B .. counter*B+B-1 of a
// per-epoch permutation determined by seed (see gather_u8.comp).
func (r *Recorder) GatherBatch(out *Tensor, dd *DeviceData, counter *Counter, seed uint64) error {
	return r.GatherBatchRows(out, dd, counter, seed, Rows{})
}

// GatherBatchRows records rows.Offset.. of global batch number counter
// (rows.Global images a batch) into out: a data-parallel rank's shard.
// The zero Rows is GatherBatch's whole batch.
func (r *Recorder) GatherBatchRows(out *Tensor, dd *DeviceData, counter *Counter, seed uint64, rows Rows) error {
	if out == nil || dd == nil || counter.tensor() == nil || len(dd.chunks) == 0 {
		return r.fail(fmt.Errorf("engine: gather batch: nil argument or released data set"))
	}
	img := dd.Channels * dd.Size * dd.Size
	if len(out.shape) != 4 || out.shape[1] != dd.Channels || out.shape[2] != dd.Size || out.shape[3] != dd.Size {
		return r.fail(fmt.Errorf("engine: gather batch: output %v does not hold [B,%d,%d,%d] images", out.shape, dd.Channels, dd.Size, dd.Size))
	}
	global, offset, err := rows.push("gather batch", out.shape[0])
	if err != nil {
		return r.fail(err)
	}
	ts := []*Tensor{out, counter.t}
	for i := 0; i < maxDataChunks; i++ {
		ts = append(ts, dd.chunks[min(i, len(dd.chunks)-1)]) // unused slots repeat the last chunk
	}
	push := shaders.GatherU8Push{
		Batch: uint32(out.shape[0]), N: uint32(dd.N), ImgBytes: uint32(img), PerChunk: uint32(dd.perChunk),
		SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), HalfBits: dd.halfBits(),
		Global: global, Offset: offset,
	}
	return dispatch(r, shaders.GatherU8, nil, r.ewGroups(out.n), push, ts...)
}

// halfBits is half the width of the Feistel permutation over the N images
// (permute.glsl): the smallest even number of bits covering N, halved, and
// at least 1.
func (dd *DeviceData) halfBits() uint32 {
	return uint32(max(1, (bits.Len(uint(dd.N-1))+1)/2))
}
