package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"vkgan/engine"
	"vkgan/internal/bench"
	"vkgan/vk"
)

func benchCmd(fs *flag.FlagSet) func() error {
	asJSON := fs.Bool("json", false, "print one JSON array of results instead of a table")
	kernel := fs.String("kernel", "", "run only cases whose kernel name contains this")
	device := fs.String("device", "", "device index or name substring (default $VKGAN_DEVICE, else the best device)")
	repeat := fs.Int("repeat", 5, "timed submits per case, after one warm-up; the median is reported")
	seed := fs.Uint64("seed", 1, "seed of the random input data")
	tune := fs.Bool("tune", false, "first tune the GEMM shapes the device's tuning table lacks (see vkgan tune)")
	return func() error {
		if *repeat < 1 {
			return fmt.Errorf("bench: -repeat %d: want at least 1", *repeat)
		}
		cases := bench.Filter(bench.Cases(), *kernel)
		if len(cases) == 0 {
			return fmt.Errorf("bench: no case's kernel name contains %q", *kernel)
		}
		d, err := engine.Open(vk.Options{Device: *device})
		if err != nil {
			return deviceError(err)
		}
		defer d.Close()
		tuned := useTuning("bench", d, *tune, stderr)
		info := d.Info()
		peak, how, havePeak, err := bench.Peak(info)
		if err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "device: %s (%s, API %s)\n", info.Name, info.Type, info.APIVersion)
			if havePeak {
				fmt.Fprintf(stdout, "peak:   %.0f GFLOP/s fp32 (%s)\n", peak, how)
			} else {
				fmt.Fprintf(stdout, "peak:   unknown (set %s to report fractions)\n", bench.PeakEnv)
			}
			fmt.Fprintf(stdout, "median of %d submits after 1 warm-up\n\n", *repeat)
		}
		// Fixed-width columns rather than tabwriter: rows are printed as
		// each case finishes, and a full run takes minutes on lavapipe.
		const row = "%-17s %-25s %10s %9s %8s %8s  %s\n"
		if !*asJSON {
			fmt.Fprintf(stdout, row, "kernel", "shape", "ms", "GFLOP/s", "GB/s", "of peak", "variant")
		}
		results := []bench.Result{}
		failed := 0
		for _, c := range cases {
			res, err := bench.Run(d, c, *repeat, *seed, peak)
			if err != nil {
				failed++
				if *asJSON {
					fmt.Fprintf(os.Stderr, "vkgan: bench %s: %v\n", c.Name(), err)
				} else {
					fmt.Fprintf(stdout, "%-17s %-25s error: %v\n", c.Kernel, c.Shape, err)
				}
				continue
			}
			results = append(results, res)
			if !*asJSON {
				gflops, frac := "-", "-"
				if c.Flops > 0 {
					gflops = fmt.Sprintf("%.1f", res.GFLOPS)
				}
				if res.Fraction != nil {
					frac = fmt.Sprintf("%.1f%%", 100**res.Fraction)
				}
				fmt.Fprintf(stdout, row, res.Kernel, res.Shape, fmt.Sprintf("%.3f", res.Ms), gflops, fmt.Sprintf("%.2f", res.GBps), frac, cmp.Or(res.Variant, "-"))
			}
		}
		tuned(true)
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(results); err != nil {
				return err
			}
		}
		if len(results) == 0 {
			return fmt.Errorf("bench: all %d cases failed", failed)
		}
		return nil
	}
}
