package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"vkgan/vk"
)

// flopsPerCycle is one core's fp32 peak with AVX2+FMA: 2 FMA units x 8
// lanes x 2 FLOPs per FMA. lavapipe's LLVM backend emits 256-bit vectors
// ("llvmpipe (LLVM 15, 256 bits)"), so this holds on AVX-512 hosts too.
const flopsPerCycle = 32

// PeakEnv overrides the peak GFLOP/s of any device.
const PeakEnv = "VKGAN_PEAK_GFLOPS"

// Peak returns the device's peak fp32 GFLOP/s and how it was obtained, or
// ok=false when unknown. VKGAN_PEAK_GFLOPS wins; a CPU device (lavapipe)
// runs on the host, whose peak is estimated by HostPeak; a GPU's peak is
// not queryable through Vulkan, so it is unknown without the variable.
func Peak(info vk.DeviceInfo) (gflops float64, how string, ok bool, err error) {
	if s := os.Getenv(PeakEnv); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			return 0, "", false, fmt.Errorf("bench: %s=%q: want a positive number of GFLOP/s", PeakEnv, s)
		}
		return v, PeakEnv, true, nil
	}
	if info.Type != vk.CPU {
		return 0, "", false, nil
	}
	g, how, ok := HostPeak()
	return g, how, ok, nil
}

// HostPeak estimates the host CPU's fp32 peak as cores x GHz x 32
// FLOP/cycle, with cores from runtime.NumCPU and GHz the highest
// "cpu MHz" in /proc/cpuinfo (idle cores report lower clocks).
func HostPeak() (gflops float64, how string, ok bool) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	mhz, ok := maxCPUMHz(f)
	if !ok {
		return 0, "", false
	}
	cores := runtime.NumCPU()
	g := float64(cores) * mhz / 1e3 * flopsPerCycle
	return g, fmt.Sprintf("%d cores x %.2f GHz x %d FLOP/cycle", cores, mhz/1e3, flopsPerCycle), true
}

// maxCPUMHz returns the largest "cpu MHz" value in a /proc/cpuinfo listing.
func maxCPUMHz(r io.Reader) (float64, bool) {
	var best float64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && x > best {
			best = x
		}
	}
	return best, best > 0
}
