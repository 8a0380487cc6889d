package main

import (
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/viewer"
)

func TestViewNoDisplayExitsTwo(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	fs := flag.NewFlagSet("vkgan view", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	action := viewCmd(fs)
	require.NoError(t, fs.Parse([]string{"-frames", "3", "runs/x"}))
	cmdArgs = fs.Args()
	err := action()
	var ee *viewer.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	require.Equal(t, 2, ee.Code)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), "no display")
	require.Contains(t, err.Error(), "vkgan sample -run runs/x -out FILE.png")
}
