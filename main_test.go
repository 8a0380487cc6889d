package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/vk"
)

func runCLI(args ...string) (code int, out, errOut string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	code, _, errOut := runCLI()
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "usage: vkgan")

	code, _, errOut = runCLI("frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	assert.Contains(t, errOut, "devices")

	code, out, _ := runCLI("help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "bench")

	code, _, errOut = runCLI("help", "bench")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "-repeat")

	code, _, errOut = runCLI("bench", "-nosuchflag")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "nosuchflag")

	code, _, errOut = runCLI("devices", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "unexpected argument")
}

func TestBenchBadFlags(t *testing.T) {
	code, _, errOut := runCLI("bench", "-repeat", "0")
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), "one error line: %q", errOut)
	assert.True(t, strings.HasPrefix(errOut, "vkgan: "), errOut)

	code, _, errOut = runCLI("bench", "-kernel", "no-such-kernel")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no-such-kernel")
}

func hasDevice(t *testing.T) {
	t.Helper()
	infos, err := vk.Devices()
	if err == nil && len(infos) == 0 {
		err = vk.ErrNoDevice
	}
	if err != nil {
		if os.Getenv("VKGAN_REQUIRE_DEVICE") == "1" {
			t.Fatalf("no Vulkan device and VKGAN_REQUIRE_DEVICE=1: %v", err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
}

func TestDevicesJSON(t *testing.T) {
	hasDevice(t)
	code, out, errOut := runCLI("devices", "-json")
	require.Equal(t, 0, code, errOut)
	var devs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &devs))
	require.NotEmpty(t, devs)
	defaults := 0
	for _, d := range devs {
		for _, k := range []string{"index", "name", "type", "api_version", "subgroup_size", "max_shared_memory", "max_storage_buffer_range", "device_local_bytes"} {
			assert.Contains(t, d, k)
		}
		if d["default"] == true {
			defaults++
		}
	}
	assert.Equal(t, 1, defaults, "exactly one default device")

	code, out, _ = runCLI("devices")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "(default)")
	assert.Contains(t, out, "subgroup size")
}

func TestBenchJSON(t *testing.T) {
	hasDevice(t)
	code, out, errOut := runCLI("bench", "-json", "-kernel", "fill", "-repeat", "1")
	require.Equal(t, 0, code, errOut)
	var res []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res, 1)
	for _, k := range []string{"kernel", "shape", "ms", "gflops", "gbps", "device"} {
		assert.Contains(t, res[0], k)
	}
	assert.Equal(t, "fill", res[0]["kernel"])
}
