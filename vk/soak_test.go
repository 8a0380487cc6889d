package vk

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSubmitSoak replays one recorded fill dispatch 10,000 times and checks
// that resident memory stays flat: a training run submits hundreds of
// thousands of times, and any per-submit C allocation in the binding (see
// the notes on vulkan-go's PassRef) would show up here as growth.
func TestSubmitSoak(t *testing.T) {
	const (
		warmup   = 500
		submits  = 10000
		maxGrow  = 1 << 20 // bytes
		elements = 4096
	)
	d := device(t)
	p := fillPipeline(t, d)
	defer p.Release()
	b, err := d.NewBuffer(4 * elements)
	require.NoError(t, err)
	defer b.Release()
	r, err := d.NewRecorder()
	require.NoError(t, err)
	defer r.Release()
	r.Dispatch(p, [3]uint32{elements / 256, 1, 1}, fillPush(elements, 1), b)
	require.NoError(t, r.End())

	for i := 0; i < warmup; i++ {
		require.NoError(t, d.Submit(r))
	}
	before := rss(t)
	start := time.Now()
	for i := 0; i < submits; i++ {
		if err := d.Submit(r); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	after := rss(t)
	grow := after - before
	t.Logf("%d submits in %v (%.1f µs each); VmRSS %d KiB -> %d KiB (growth %+d KiB)",
		submits, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/submits, before>>10, after>>10, grow>>10)
	require.Less(t, grow, int64(maxGrow), "resident memory grew by %d bytes over %d submits", grow, submits)
}

// rss returns the process's resident set size in bytes (VmRSS), after a
// GC that returns freed Go memory to the OS so only real leaks remain.
func rss(t testing.TB) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status to read VmRSS from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(v) // "12345 kB"
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		require.NoError(t, err, "VmRSS line %q", sc.Text())
		return kb << 10
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}
