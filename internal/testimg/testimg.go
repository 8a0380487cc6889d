// Package testimg writes folders of small synthetic images for the tests
// of the packages that train from a folder (train, viewer, the CLI).
package testimg

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
)

// WritePNGs creates dir and writes n w x h PNGs into it, named 0.png to
// (n-1).png; draw paints image i.
func WritePNGs(dir string, n, w, h int, draw func(i int, img *image.RGBA)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		draw(i, img)
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
