package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"vkgan/vk"
)

// deviceError adds how to get a device on a machine without one to an
// error from opening or listing devices, unless devices exist (then the
// selector was wrong and the error says so). The loader reports a machine
// with no driver at all as VK_ERROR_INCOMPATIBLE_DRIVER from vkCreateInstance.
func deviceError(err error) error {
	var ve *vk.Error
	if !errors.Is(err, vk.ErrNoDevice) && !(errors.As(err, &ve) && ve.Call == "vkCreateInstance") {
		return err
	}
	if infos, lerr := vk.Devices(); lerr != nil || len(infos) == 0 {
		return fmt.Errorf("no Vulkan device found (%w); install Mesa's lavapipe CPU driver and the Vulkan loader with `make deps` (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1)", err)
	}
	return err
}

// deviceJSON is one entry of `vkgan devices -json`.
type deviceJSON struct {
	Index                 int    `json:"index"`
	Name                  string `json:"name"`
	Type                  string `json:"type"`
	APIVersion            string `json:"api_version"`
	DriverVersion         string `json:"driver_version"`
	Driver                string `json:"driver,omitempty"`
	VendorID              uint32 `json:"vendor_id"`
	DeviceID              uint32 `json:"device_id"`
	SubgroupSize          uint32 `json:"subgroup_size"`
	MaxSharedMemory       uint32 `json:"max_shared_memory"`
	MaxWorkGroupSize      uint32 `json:"max_workgroup_size"`
	MaxStorageBufferRange uint64 `json:"max_storage_buffer_range"`
	MaxPushConstants      uint32 `json:"push_constant_bytes"`
	ShaderInt64           bool   `json:"int64"`
	TimestampCompute      bool   `json:"timestamps"`
	DeviceLocalBytes      uint64 `json:"device_local_bytes"`
	Default               bool   `json:"default"`
}

func devicesCmd(fs *flag.FlagSet) func() error {
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	return func() error {
		infos, err := vk.Devices()
		if err == nil && len(infos) == 0 {
			err = vk.ErrNoDevice
		}
		if err != nil {
			return deviceError(err)
		}
		sel := os.Getenv("VKGAN_DEVICE")
		def, err := vk.DefaultIndex(infos, sel)
		if err != nil {
			// Still list the devices: that is how to fix the selector.
			fmt.Fprintf(os.Stderr, "vkgan: VKGAN_DEVICE=%q: %v\n", sel, err)
		}
		if *asJSON {
			out := make([]deviceJSON, len(infos))
			for i, d := range infos {
				l := d.Limits
				out[i] = deviceJSON{
					Index: d.Index, Name: d.Name, Type: d.Type.String(),
					APIVersion: d.APIVersion, DriverVersion: d.DriverVersion, Driver: driverString(d),
					VendorID: d.VendorID, DeviceID: d.DeviceID,
					SubgroupSize: l.SubgroupSize, MaxSharedMemory: l.MaxSharedMemory,
					MaxWorkGroupSize: l.MaxWorkGroupSize, MaxStorageBufferRange: l.MaxStorageBufferRange,
					MaxPushConstants: l.MaxPushConstants, ShaderInt64: l.ShaderInt64,
					TimestampCompute: l.TimestampCompute, DeviceLocalBytes: l.DeviceLocalBytes,
					Default: i == def,
				}
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		for i, d := range infos {
			mark := ""
			if i == def {
				mark = "  (default)"
			}
			l := d.Limits
			fmt.Fprintf(stdout, "%d: %s%s\n", d.Index, d.Name, mark)
			tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
			fmt.Fprintf(tw, "   type\t%s\n", d.Type)
			fmt.Fprintf(tw, "   API version\t%s\n", d.APIVersion)
			fmt.Fprintf(tw, "   driver\t%s\n", driverString(d))
			fmt.Fprintf(tw, "   vendor / device id\t0x%04x / 0x%04x\n", d.VendorID, d.DeviceID)
			fmt.Fprintf(tw, "   subgroup size\t%d\n", l.SubgroupSize)
			fmt.Fprintf(tw, "   max shared memory\t%s\n", bytesString(uint64(l.MaxSharedMemory)))
			fmt.Fprintf(tw, "   max workgroup size\t%d invocations\n", l.MaxWorkGroupSize)
			fmt.Fprintf(tw, "   max storage buffer\t%s\n", bytesString(l.MaxStorageBufferRange))
			fmt.Fprintf(tw, "   push constants\t%d bytes\n", l.MaxPushConstants)
			fmt.Fprintf(tw, "   int64 / timestamps\t%v / %v\n", l.ShaderInt64, l.TimestampCompute)
			fmt.Fprintf(tw, "   device-local memory\t%s\n", bytesString(l.DeviceLocalBytes))
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		return nil
	}
}

// bytesString prints a byte count in the largest binary unit that divides
// it evenly enough to read (KiB, MiB, GiB).
func bytesString(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// driverString names the driver and its version: the Vulkan 1.2 driver
// properties where the device has them ("llvmpipe, Mesa 25.0.7 (LLVM
// 15.0.6)"), else the packed driverVersion.
func driverString(d vk.DeviceInfo) string {
	if d.DriverName != "" {
		return fmt.Sprintf("%s, %s (version %s)", d.DriverName, d.DriverInfo, d.DriverVersion)
	}
	return d.DriverVersion
}
