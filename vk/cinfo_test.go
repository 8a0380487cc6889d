package vk

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArraysSurviveCollections runs every call that passes or fills an
// array (instance layers and extensions, instance and device creation,
// queue families, layouts, descriptor pools) while another goroutine
// collects garbage without pause. Through vulkan-go, whose arrays a
// finalizer frees as soon as they are marshalled, the extension query
// alone corrupted the heap within a second here ("corrupted double-linked
// list" at the next malloc), as it did one CI run in five.
func TestArraysSurviveCollections(t *testing.T) {
	device(t) // skips, or fails under VKGAN_REQUIRE_DEVICE, without one
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			runtime.GC()
		}
	}()
	defer func() { stop.Store(true); <-done }()

	for i := range 2000 {
		// The loader implements debug reports itself, so every loader has it.
		if !hasInstanceExtension("VK_EXT_debug_report") {
			t.Fatalf("query %d: VK_EXT_debug_report missing", i)
		}
		if hasInstanceExtension("VK_VKGAN_no_such_extension") || hasInstanceLayer("VK_LAYER_VKGAN_no_such_layer") {
			t.Fatalf("query %d: found an extension or layer that does not exist", i)
		}
	}
	for range 5 {
		d, err := Open(Options{OnMessage: testDevice.Collect})
		require.NoError(t, err)
		assert.NotEmpty(t, queueFamilies(d.inst.handle, d.phys))
		p := fillPipeline(t, d)
		b, err := d.NewBuffer(4 * 1000)
		require.NoError(t, err)
		r, err := d.NewRecorder()
		require.NoError(t, err)
		for range setsPerPool + 1 { // a second descriptor pool
			r.Dispatch(p, [3]uint32{4, 1, 1}, fillPush(1000, 2.5), b)
		}
		require.NoError(t, r.End())
		require.NoError(t, d.Submit(r))
		got := make([]byte, 4*1000)
		require.NoError(t, b.Read(0, got))
		assert.Equal(t, fillPush(1000, 2.5)[4:], got[4*999:])
		require.NoError(t, d.Close())
	}
	assert.Empty(t, testDevice.Take())
}

// TestSubmitRefusesReleasedBuffer: a recording whose buffer (or the buffer
// under a view it used) was released must not run: on a CPU driver the
// memory is the process's heap, and the commands would write into it.
func TestSubmitRefusesReleasedBuffer(t *testing.T) {
	d := device(t)
	p := fillPipeline(t, d)
	defer p.Release()
	for _, through := range []string{"buffer", "view", "copy"} {
		t.Run(through, func(t *testing.T) {
			b, err := d.NewBuffer(4 * 1024)
			require.NoError(t, err)
			keep, err := d.NewBuffer(4 * 1024)
			require.NoError(t, err)
			defer keep.Release()
			r, err := d.NewRecorder()
			require.NoError(t, err)
			defer r.Release()
			var v *Buffer
			switch through {
			case "buffer":
				r.Dispatch(p, [3]uint32{4, 1, 1}, fillPush(1024, 1), b)
			case "view":
				v, err = b.View(256, 1024)
				require.NoError(t, err)
				r.Dispatch(p, [3]uint32{1, 1, 1}, fillPush(256, 1), v)
			case "copy":
				r.Copy(keep, 0, b, 0, 1024)
			}
			require.NoError(t, r.End())
			require.NoError(t, d.Submit(r), "every buffer still allocated")
			b.Release()
			assert.ErrorContains(t, d.Submit(r), "released after it was recorded")
			if v == nil {
				return
			}
			// The view outlived its buffer: the host may not touch its
			// memory, nor may a new recording.
			assert.ErrorContains(t, v.Write(0, make([]byte, 4)), "released")
			assert.ErrorContains(t, v.Read(0, make([]byte, 4)), "released")
			assert.Nil(t, v.Mapped())
			r2, err := d.NewRecorder()
			require.NoError(t, err)
			defer r2.Release()
			r2.Dispatch(p, [3]uint32{1, 1, 1}, fillPush(256, 1), v)
			assert.ErrorContains(t, r2.End(), "released buffer")
		})
	}
	assert.Empty(t, testDevice.Take())
}
