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
	width := fs.Int("width", 0, "window width, with -height (default: the grid scaled to at least 512 pixels)")
	height := fs.Int("height", 0, "window height, with -width")
	device := fs.String("device", "", "Vulkan device index or name substring")
	return func() error {
		if len(cmdArgs) != 1 {
			return errors.New("view: want one argument, the run directory: vkgan view RUN_DIR")
		}
		if err := checkViewFlags(*frames, *n, *width, *height, *shot); err != nil {
			return err
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

// checkViewFlags reports every bad number at once, before a window opens.
// viewer.Run checks the rest (-screenshot needs -frames); it also checks
// the grid, but takes 0 for its default and cannot name the flag.
func checkViewFlags(frames, n, width, height int, shot string) error {
	var errs []error
	bad := func(flag string, v int, why string) {
		errs = append(errs, fmt.Errorf("view: -%s %d %s", flag, v, why))
	}
	if frames < 0 {
		bad("frames", frames, "must be positive (0: until Q or Esc)")
	}
	if n < 1 || n > viewer.MaxGrid {
		bad("n", n, fmt.Sprintf("must be in 1..%d", viewer.MaxGrid))
	}
	if width < 0 {
		bad("width", width, "must be positive (0: the grid's size)")
	}
	if height < 0 {
		bad("height", height, "must be positive (0: the grid's size)")
	}
	if (width > 0) != (height > 0) && width >= 0 && height >= 0 {
		// The window takes its default size unless both are set.
		errs = append(errs, fmt.Errorf("view: -width %d and -height %d: give both or neither", width, height))
	}
	errs = append(errs, checkOutFile("view", "screenshot", shot))
	return errors.Join(errs...)
}
