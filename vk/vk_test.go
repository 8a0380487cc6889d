package vk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/internal/devtest"
	"vkgan/shaders"
)

// One device serves the package's tests (opening one costs ~60 ms, more
// with validation); tests that need their own, such as Close, open it.
var testDevice = devtest.New(func(onMessage func(string)) (*Device, error) {
	return Open(Options{OnMessage: onMessage})
})

func TestMain(m *testing.M) { os.Exit(testDevice.Main(m)) }

// device returns the shared test device (see devtest.Shared.Get).
func device(t testing.TB) *Device {
	t.Helper()
	return testDevice.Get(t)
}

// openOwn opens a device only this test uses; it is closed at the end.
func openOwn(t testing.TB, opts Options) *Device {
	t.Helper()
	d, err := Open(opts)
	devtest.SkipWithout(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestOpenClose(t *testing.T) {
	d := openOwn(t, Options{OnMessage: testDevice.Collect})
	info := d.Info()
	assert.NotEmpty(t, info.Name)
	assert.NotZero(t, info.Limits.MaxStorageBufferRange)
	assert.NotZero(t, info.Limits.MaxWorkGroupSize)
	assert.NotZero(t, info.Limits.SubgroupSize)
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "second Close")
	_, err := d.NewBuffer(16)
	assert.Error(t, err, "NewBuffer after Close")
	_, err = d.NewRecorder()
	assert.Error(t, err, "NewRecorder after Close")
	assert.Empty(t, testDevice.Take())
}

func TestCloseReleasesOwned(t *testing.T) {
	d := openOwn(t, Options{OnMessage: testDevice.Collect})
	b, err := d.NewBuffer(1024)
	require.NoError(t, err)
	r, err := d.NewRecorder()
	require.NoError(t, err)
	require.NoError(t, d.Close())
	// Close released them; releasing again must be a no-op, not a crash.
	b.Release()
	r.Release()
	var nilBuf *Buffer
	nilBuf.Release()
	assert.Empty(t, testDevice.Take())
}

func TestDevicesListsOne(t *testing.T) {
	infos, err := Devices()
	if err == nil && len(infos) == 0 {
		err = ErrNoDevice
	}
	devtest.SkipWithout(t, err)
	for i, d := range infos {
		assert.Equal(t, i, d.Index)
		assert.NotEmpty(t, d.Name)
		assert.Regexp(t, `^\d+\.\d+\.\d+$`, d.APIVersion)
	}
	i, err := DefaultIndex(infos, "")
	require.NoError(t, err)
	assert.True(t, i >= 0 && i < len(infos))
}

func TestChoose(t *testing.T) {
	infos := []DeviceInfo{
		{Index: 0, Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Type: CPU},
		{Index: 1, Name: "NVIDIA GeForce RTX 4090", Type: Discrete},
		{Index: 2, Name: "Intel(R) UHD Graphics 770", Type: Integrated},
	}
	for _, tc := range []struct {
		sel  string
		want int
	}{
		{"", 1},         // discrete beats integrated beats CPU
		{"0", 0},        // index
		{"2", 2},        // index
		{"LLVMPIPE", 0}, // case-insensitive name substring
		{"uhd", 2},
		{"nvidia", 1},
	} {
		got, err := DefaultIndex(infos, tc.sel)
		require.NoError(t, err, "selector %q", tc.sel)
		assert.Equal(t, tc.want, got, "selector %q", tc.sel)
	}
	for _, sel := range []string{"3", "-1", "amd"} {
		_, err := DefaultIndex(infos, sel)
		require.Error(t, err, "selector %q", sel)
		assert.ErrorIs(t, err, ErrNoDevice, "selector %q", sel)
	}
	_, err := DefaultIndex(nil, "")
	assert.ErrorIs(t, err, ErrNoDevice)
	// Integrated beats CPU when there is no discrete GPU.
	got, err := DefaultIndex([]DeviceInfo{infos[0], infos[2]}, "")
	require.NoError(t, err)
	assert.Equal(t, 1, got)
}

func TestOpenSelector(t *testing.T) {
	d := device(t)
	_, err := Open(Options{Device: "999"})
	assert.ErrorIs(t, err, ErrNoDevice)
	assert.Contains(t, err.Error(), "out of range")
	_, err = Open(Options{Device: "no-such-device-name"})
	assert.ErrorIs(t, err, ErrNoDevice)
	assert.Contains(t, err.Error(), "no-such-device-name")
	// By index and by name, the same device as the default.
	for _, sel := range []string{fmt.Sprint(d.Info().Index), strings.ToUpper(d.Info().Name)} {
		d2, err := Open(Options{Device: sel, OnMessage: testDevice.Collect})
		require.NoError(t, err, "selector %q", sel)
		assert.Equal(t, d.Info().Name, d2.Info().Name)
		require.NoError(t, d2.Close())
	}
}

func TestBufferRoundTrip(t *testing.T) {
	d := device(t)
	for _, host := range []bool{false, true} {
		for _, size := range []int64{1, 4, 255, 256, 1000, 1 << 20} {
			var b *Buffer
			var err error
			if host {
				b, err = d.NewHostBuffer(size)
			} else {
				b, err = d.NewBuffer(size)
			}
			require.NoError(t, err, "size %d host %v", size, host)
			assert.Equal(t, size, b.Size())
			want := pattern(int(size), byte(size))
			require.NoError(t, b.Write(0, want))
			got := make([]byte, size)
			require.NoError(t, b.Read(0, got))
			assert.True(t, bytes.Equal(want, got), "size %d host %v: read back differs", size, host)
			if size >= 8 {
				// A write at an offset changes only its range.
				patch := []byte{0xaa, 0xbb, 0xcc}
				require.NoError(t, b.Write(3, patch))
				copy(want[3:], patch)
				part := make([]byte, size-2)
				require.NoError(t, b.Read(2, part))
				assert.True(t, bytes.Equal(want[2:], part), "size %d: offset read differs", size)
			}
			// Out of range: past the end, negative offset, too long.
			assert.Error(t, b.Write(size, []byte{1}))
			assert.Error(t, b.Write(-1, []byte{1}))
			assert.Error(t, b.Read(0, make([]byte, size+1)))
			assert.NoError(t, b.Read(size, nil), "empty read at the end")
			b.Release()
			b.Release()
			assert.Error(t, b.Read(0, make([]byte, 1)), "read of a released buffer")
		}
	}
	_, err := d.NewBuffer(0)
	assert.Error(t, err)
	_, err = d.NewBuffer(-5)
	assert.Error(t, err)
}

func TestBufferView(t *testing.T) {
	d := device(t)
	b, err := d.NewBuffer(4096)
	require.NoError(t, err)
	defer b.Release()
	require.NoError(t, b.Write(0, make([]byte, 4096)))
	v, err := b.View(512, 1000)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), v.Size())
	data := pattern(1000, 3)
	require.NoError(t, v.Write(0, data))
	got := make([]byte, 1000)
	require.NoError(t, b.Read(512, got))
	assert.Equal(t, data, got, "write through the view lands in the parent")
	before := make([]byte, 512)
	require.NoError(t, b.Read(0, before))
	assert.Equal(t, make([]byte, 512), before, "bytes before the view untouched")
	assert.Error(t, v.Write(999, []byte{1, 2}), "write past the view's end")

	_, err = b.View(100, 16)
	assert.Error(t, err, "unaligned offset")
	_, err = b.View(3840, 512)
	assert.Error(t, err, "view past the parent's end")
	_, err = b.View(0, 0)
	assert.Error(t, err, "empty view")
	v.Release() // a no-op: the parent stays usable
	require.NoError(t, b.Read(512, got))
	assert.Equal(t, data, got)
}

// TestBufferAlias: releasing an alias leaves the parent usable, and the
// parent's Release frees its region once.
func TestBufferAlias(t *testing.T) {
	d := device(t)
	b, err := d.NewBuffer(1000)
	require.NoError(t, err)
	defer b.Release()
	require.False(t, b.own, "a small buffer shares a block")
	a := b.Alias()
	assert.Equal(t, b.Size(), a.Size())
	assert.Equal(t, b.padded, a.padded, "bound with the parent's range")
	data := pattern(1000, 5)
	require.NoError(t, a.Write(0, data))
	got := make([]byte, 1000)
	require.NoError(t, b.Read(0, got))
	assert.Equal(t, data, got, "write through the alias lands in the parent")

	blk := b.blk
	used := blk.used
	a.Release()
	a.Release()
	assert.Equal(t, used, blk.used, "releasing the alias freed the parent's region")
	require.NoError(t, b.Write(0, data), "parent after the alias's Release")
	require.NoError(t, b.Read(0, got))
	assert.Equal(t, data, got)
	b.Release()
	b.Release()
	assert.Equal(t, used-1, blk.used, "the parent's region is freed once")
	assert.Nil(t, (*Buffer)(nil).Alias())
}

func TestBufferOverlaps(t *testing.T) {
	d := device(t)
	b, err := d.NewBuffer(4096)
	require.NoError(t, err)
	defer b.Release()
	c, err := d.NewBuffer(4096)
	require.NoError(t, err)
	defer c.Release()
	v1, err := b.View(0, 1024)
	require.NoError(t, err)
	v2, err := b.View(1024, 1024)
	require.NoError(t, err)
	v3, err := b.View(768, 512)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		x, y *Buffer
		want bool
	}{
		{"itself", b, b, true},
		{"alias", b, b.Alias(), true},
		{"view", b, v2, true},
		{"adjacent views", v1, v2, false},
		{"straddling view", v1, v3, true},
		{"straddling view 2", v3, v2, true},
		{"another buffer", b, c, false},
		{"nil", b, nil, false},
	} {
		assert.Equal(t, tc.want, tc.x.Overlaps(tc.y), tc.name)
		assert.Equal(t, tc.want, tc.y.Overlaps(tc.x), tc.name+", swapped")
	}
}

func TestBufferTooLarge(t *testing.T) {
	d := device(t)
	max := int64(d.Info().Limits.MaxStorageBufferRange)
	_, err := d.NewBuffer(max + 1)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.NotErrorIs(t, err, ErrOutOfDeviceMemory)
}

func TestSubAllocationReuse(t *testing.T) {
	d := device(t)
	sizes := []int64{4, 1000, 4096, 65536, 300000}
	round := func() {
		var bufs []*Buffer
		for i := 0; i < 200; i++ {
			b, err := d.NewBuffer(sizes[i%len(sizes)])
			require.NoError(t, err)
			bufs = append(bufs, b)
		}
		// Release in an interleaved order so coalescing is exercised.
		for i := 0; i < len(bufs); i += 2 {
			bufs[i].Release()
		}
		for i := 1; i < len(bufs); i += 2 {
			bufs[i].Release()
		}
	}
	round()
	blocks := len(d.mem.blocks)
	require.NotZero(t, blocks)
	for i := 0; i < 20; i++ {
		round()
	}
	assert.Equal(t, blocks, len(d.mem.blocks), "blocks grew although every buffer was released")
	for i, b := range d.mem.blocks {
		assert.Equal(t, 0, b.used, "block %d still has regions in use", i)
		assert.Equal(t, []span{{0, b.size}}, b.free, "block %d's free list did not coalesce", i)
	}
}

// fillPipeline builds the fill kernel: 1 binding, push constants n uint32
// and value float32.
func fillPipeline(t testing.TB, d *Device) *Pipeline {
	t.Helper()
	code, err := shaders.SPIRV("fill")
	require.NoError(t, err)
	p, err := d.NewPipeline(PipelineDesc{Name: "fill", SPIRV: code, Bindings: 1, PushSize: 8})
	require.NoError(t, err)
	return p
}

func fillPush(n uint32, v float32) []byte {
	push := make([]byte, 8)
	binary.LittleEndian.PutUint32(push, n)
	binary.LittleEndian.PutUint32(push[4:], math.Float32bits(v))
	return push
}

func TestDispatchFillAndTimestamps(t *testing.T) {
	d := device(t)
	p := fillPipeline(t, d)
	defer p.Release()
	const n = 1000
	b, err := d.NewBuffer(4 * n)
	require.NoError(t, err)
	defer b.Release()
	require.NoError(t, b.Write(0, make([]byte, 4*n)))
	r, err := d.NewRecorder()
	require.NoError(t, err)
	defer r.Release()
	t0 := r.Timestamp()
	r.Dispatch(p, [3]uint32{2, 1, 1}, fillPush(n-1, 2.5), b) // leaves the last element alone
	r.Barrier()
	t1 := r.Timestamp()
	require.NoError(t, r.End())
	require.NoError(t, d.Submit(r))
	got := make([]byte, 4*n)
	require.NoError(t, b.Read(0, got))
	for i := 0; i < n; i++ {
		want := float32(2.5)
		if i == n-1 {
			want = 0
		}
		require.Equal(t, want, math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:])), "element %d", i)
	}
	if d.Info().Limits.TimestampCompute {
		ts, err := r.Timestamps()
		require.NoError(t, err)
		require.Len(t, ts, 2)
		assert.GreaterOrEqual(t, ts[t1], ts[t0])
	}
	// Our own checks catch interface mismatches before Vulkan sees them.
	r2, err := d.NewRecorder()
	require.NoError(t, err)
	defer r2.Release()
	r2.Dispatch(p, [3]uint32{1, 1, 1}, make([]byte, 4), b)
	assert.ErrorContains(t, r2.End(), "push constants")
	code, err := shaders.SPIRV("fill")
	require.NoError(t, err)
	_, err = d.NewPipeline(PipelineDesc{Name: "fill", SPIRV: code, Bindings: maxBindings + 1, PushSize: 8})
	assert.ErrorContains(t, err, "buffer bindings", "more bindings than a descriptor write holds")
	// A device that allows fewer buffers per shader than a kernel binds
	// gets an error naming both counts, not a driver failure.
	saved := d.info.Limits
	d.info.Limits.MaxStorageBuffers = 1
	_, err = d.NewPipeline(PipelineDesc{Name: "fill", SPIRV: code, Bindings: 2, PushSize: 8})
	d.info.Limits = saved
	assert.ErrorContains(t, err, "2 storage buffers and 0 texel buffers, the device allows 1")
}

// TestValidationLayerReports checks that a bug only the Khronos layer can
// see reaches Options.OnMessage of the instance that caused it: a pipeline
// layout whose push-constant range (4 bytes) is smaller than the block the
// shader declares (8 bytes), VUID-VkComputePipelineCreateInfo-layout-00703.
// Its own validated device must get the message even when another
// validated device (the shared one under VKGAN_VALIDATE=1) is open.
func TestValidationLayerReports(t *testing.T) {
	if err := load(); err == nil && !hasInstanceLayer(validationLayer) {
		t.Skipf("%s is not installed (Debian: vulkan-validationlayers)", validationLayer)
	}
	device(t)
	var mu sync.Mutex
	var seen []string
	d := openOwn(t, Options{Validate: true, OnMessage: func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}})
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		m := seen
		seen = nil
		return m
	}
	d.ValidationMessages() // start from a clean slate
	code, err := shaders.SPIRV("fill")
	require.NoError(t, err)
	p, err := d.NewPipeline(PipelineDesc{Name: "fill-bad-layout", SPIRV: code, Bindings: 1, PushSize: 4})
	if err == nil {
		p.Release()
	}
	got := take()
	require.NotEmpty(t, got, "OnMessage received nothing from the validation layer")
	assert.Contains(t, strings.Join(got, "\n"), "VUID-VkComputePipelineCreateInfo-layout")
	assert.Equal(t, got, d.ValidationMessages(), "messages are also kept on the device")
}

// TestPipelineCacheSeal checks that a damaged or foreign cache file never
// reaches the driver.
func TestPipelineCacheSeal(t *testing.T) {
	blob := []byte("driver blob \x00\x01\x02")
	sealed := sealCache(blob)
	require.Equal(t, blob, unsealCache(sealed))
	torn := append([]byte(nil), sealed...)
	torn[len(torn)-1] ^= 1
	require.Nil(t, unsealCache(torn), "a flipped byte")
	require.Nil(t, unsealCache(sealed[:len(sealed)-3]), "a torn file")
	require.Nil(t, unsealCache(blob), "an unsealed (old or foreign) file")
	require.Nil(t, unsealCache(nil))
}

func TestMemoryStats(t *testing.T) {
	d := openOwn(t, Options{NoPipelineCache: true})
	s0 := d.MemoryStats()
	require.Zero(t, s0.Held)
	small, err := d.NewBuffer(1000)
	require.NoError(t, err)
	s := d.MemoryStats()
	assert.Equal(t, uint64(1000), s.Requested)
	second, err := d.NewBuffer(3000) // from the same block
	require.NoError(t, err)
	assert.Equal(t, uint64(4000), d.MemoryStats().Requested)
	second.Release()
	assert.Equal(t, d.mem.blockSize, s.Held, "the first small buffer takes one block")
	big := int64(d.mem.blockSize) // too large to share a block
	large, err := d.NewBuffer(big)
	require.NoError(t, err)
	s = d.MemoryStats()
	assert.Equal(t, uint64(1000+big), s.Requested)
	assert.Equal(t, d.mem.blockSize+uint64(big), s.Held)
	large.Release()
	small.Release()
	s = d.MemoryStats()
	assert.Zero(t, s.Requested)
	assert.Equal(t, d.mem.blockSize, s.Held, "a shared block is kept for reuse")
	assert.Equal(t, uint64(1000+big), s.PeakRequested)
	assert.Equal(t, d.mem.blockSize+uint64(big), s.PeakHeld)
	assert.Equal(t, 1, s.Allocations, "the shared block")
	assert.Equal(t, 2, s.PeakAllocations, "the shared block and the large buffer's own")
}

// TestMemoryCrowded: a buffer over half a small block gets its own
// allocation until the allocations held reach half the driver's cap; then
// such buffers share the larger blocks, so a model of many mid-sized
// buffers cannot run into the cap.
func TestMemoryCrowded(t *testing.T) {
	d := openOwn(t, Options{NoPipelineCache: true})
	require.Less(t, d.mem.blockSize, d.mem.crowded)
	d.mem.maxAllocs = 3
	mid := int64(d.mem.blockSize) // too large for a small block, small for a crowded one
	var bufs []*Buffer
	for i := range 6 {
		b, err := d.NewBuffer(mid)
		require.NoError(t, err)
		bufs = append(bufs, b)
		if i < 3 {
			assert.True(t, b.own, "buffer %d: its own allocation while allocations are few", i)
		} else {
			assert.False(t, b.own, "buffer %d: in a shared block once crowded", i)
		}
	}
	s := d.MemoryStats()
	assert.Equal(t, 4, s.Allocations, "three of their own and one crowded block")
	assert.Equal(t, 3*uint64(mid)+d.mem.crowded, s.Held)
	for i, b := range bufs {
		require.NoError(t, b.Write(0, pattern(int(mid), byte(i))))
	}
	for i, b := range bufs {
		got := make([]byte, mid)
		require.NoError(t, b.Read(0, got))
		require.Equal(t, pattern(int(mid), byte(i)), got, "buffer %d", i)
		b.Release()
	}
	assert.Zero(t, d.MemoryStats().Requested)
}

// TestTexelBindings: sub-allocated and view buffers can be texel views
// (their regions start 256-byte aligned), a released one cannot, and a
// texel mask outside the bindings is an error, not a pipeline.
func TestTexelBindings(t *testing.T) {
	d := device(t)
	b, err := d.NewBuffer(1000) // not a whole number of texels: viewed to the texel's end
	require.NoError(t, err)
	assert.True(t, b.TexelViewable())
	v, err := b.View(256, 100)
	require.NoError(t, err)
	assert.True(t, v.TexelViewable())
	b.Release()
	assert.False(t, b.TexelViewable(), "released")
	var none *Buffer
	assert.False(t, none.TexelViewable(), "nil")
	code, err := shaders.SPIRV("fill")
	require.NoError(t, err)
	_, err = d.NewPipeline(PipelineDesc{Name: "fill", SPIRV: code, Bindings: 1, PushSize: 8, Texel: 1 << 1})
	assert.ErrorContains(t, err, "texel binding mask")
	assert.Empty(t, testDevice.Take())
}
