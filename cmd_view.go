package main

import (
	"errors"
	"flag"
	"fmt"

	"vkgan/viewer"
)

// viewCmd is `vkgan view RUN_DIR`: a window with G's samples drawn on the
// device. Without a display it fails with *viewer.ExitError (Code 2).
func viewCmd(fs *flag.FlagSet) func() error {
	frames := fs.Int("frames", 0, "close after N frames (0: until Q or Esc)")
	shot := fs.String("screenshot", "", "with -frames: write the last frame as this PNG file")
	n := fs.Int("n", viewer.DefaultGrid, "grid size: N x N samples (1..16; + and - change it)")
	seed := fs.Uint64("seed", 0, "noise seed (default: the run's seed, as vkgan sample uses)")
	width := fs.Int("width", 0, "window width (default: the grid scaled to at least 512 pixels)")
	height := fs.Int("height", 0, "window height")
	device := fs.String("device", "", "Vulkan device index or name substring")
	return func() error {
		if len(cmdArgs) != 1 {
			return errors.New("view: want one argument, the run directory: vkgan view RUN_DIR")
		}
		seedSet := false
		fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
		st, err := viewer.Run(viewer.Options{
			RunDir: cmdArgs[0], Grid: *n, Seed: *seed, SeedSet: seedSet, Device: *device,
			Width: *width, Height: *height, Frames: *frames, Screenshot: *shot,
		})
		if err != nil {
			return err
		}
		if *frames > 0 {
			fmt.Fprintf(stdout, "%d frames at %dx%d: mean %v, median %v, p95 %v per frame\n",
				st.Frames, st.Extent[0], st.Extent[1], st.Mean, st.Median, st.P95)
		}
		return nil
	}
}
