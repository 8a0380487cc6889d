package engine

import (
	"encoding/binary"
	"fmt"
	"math"

	"vkgan/vk"
)

// Tensor is a float32 array on the device in row-major (NCHW) order. Its
// data stays on the device; Upload and Download are the only host copies.
type Tensor struct {
	d     *Device
	buf   *vk.Buffer
	shape []int
	n     int
}

// NewTensor allocates a zero-filled tensor of the given shape.
func (d *Device) NewTensor(shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	buf, err := d.vk.NewBuffer(int64(4 * n))
	if err != nil {
		return nil, fmt.Errorf("engine: tensor %v: %w", shape, err)
	}
	t := &Tensor{d: d, buf: buf, shape: append([]int(nil), shape...), n: n}
	if err := buf.Write(0, make([]byte, 4*n)); err != nil {
		buf.Release()
		return nil, err
	}
	return t, nil
}

// FromSlice allocates a tensor of the given shape holding data.
func (d *Device) FromSlice(data []float32, shape ...int) (*Tensor, error) {
	t, err := d.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	if err := t.Upload(data); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

func numel(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, fmt.Errorf("engine: tensor needs at least one dimension")
	}
	n := 1
	for _, s := range shape {
		if s <= 0 {
			return 0, fmt.Errorf("engine: tensor shape %v has a non-positive dimension", shape)
		}
		if n > math.MaxInt32/s {
			// The kernels index elements with 32-bit integers.
			return 0, fmt.Errorf("engine: tensor shape %v has more than 2^31 elements: %w", shape, vk.ErrTooLarge)
		}
		n *= s
	}
	return n, nil
}

// Shape returns the tensor's dimensions.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Len is the number of elements.
func (t *Tensor) Len() int { return t.n }

// Dim returns dimension i.
func (t *Tensor) Dim(i int) int { return t.shape[i] }

// Buffer is the tensor's device buffer.
func (t *Tensor) Buffer() *vk.Buffer { return t.buf }

// Reshape returns a view of t's storage with another shape of the same
// size. Like a View, it does not own the storage: its Release does nothing,
// and it must not outlive t.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if n != t.n {
		return nil, fmt.Errorf("engine: cannot reshape %v (%d elements) to %v", t.shape, t.n, shape)
	}
	return &Tensor{d: t.d, buf: t.buf.Alias(), shape: append([]int(nil), shape...), n: n}, nil
}

// shares reports whether t and u overlap in device memory: the same
// tensor, or overlapping views (View, Reshape) of one storage. Checks that
// forbid aliasing use it rather than comparing buffers with ==, since a
// view has a Buffer of its own.
func (t *Tensor) shares(u *Tensor) bool { return t.buf.Overlaps(u.buf) }

// Upload copies data (len == Len) to the device. It must not overlap a
// submit that uses t.
func (t *Tensor) Upload(data []float32) error {
	if len(data) != t.n {
		return fmt.Errorf("engine: upload of %d values into tensor %v of %d", len(data), t.shape, t.n)
	}
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return t.buf.Write(0, b)
}

// Download copies the tensor to the host.
func (t *Tensor) Download() ([]float32, error) {
	b := make([]byte, 4*t.n)
	if err := t.buf.Read(0, b); err != nil {
		return nil, err
	}
	out := make([]float32, t.n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// Release frees the tensor's memory; its views (View, Reshape) become
// invalid. Releasing a view does nothing.
func (t *Tensor) Release() {
	if t == nil {
		return
	}
	t.buf.Release()
}

// ViewAlign is the element alignment of tensor views: 64 float32 values,
// 256 bytes, a multiple of every device's storage-buffer offset alignment.
const ViewAlign = 64

// View returns a tensor of the given shape aliasing t's storage from
// element offset (a multiple of ViewAlign). It must not outlive t.
func (t *Tensor) View(offset int, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset%ViewAlign != 0 || offset+n > t.n {
		return nil, fmt.Errorf("engine: view of %v at %d does not fit tensor %v or is not %d-aligned", shape, offset, t.shape, ViewAlign)
	}
	b, err := t.buf.View(int64(4*offset), int64(4*n))
	if err != nil {
		return nil, err
	}
	return &Tensor{d: t.d, buf: b, shape: append([]int(nil), shape...), n: n}, nil
}

// Bytes copies the tensor's raw bytes (little-endian float32) to the host.
func (t *Tensor) Bytes() ([]byte, error) {
	b := make([]byte, 4*t.n)
	return b, t.buf.Read(0, b)
}

// SetBytes uploads raw little-endian float32 bytes (len = 4*Len).
func (t *Tensor) SetBytes(b []byte) error {
	if len(b) != 4*t.n {
		return fmt.Errorf("engine: %d bytes for tensor %v of %d bytes", len(b), t.shape, 4*t.n)
	}
	return t.buf.Write(0, b)
}
