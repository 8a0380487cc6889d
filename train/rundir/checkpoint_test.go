package rundir_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/safetensors"
	"vkgan/train/internal/traintest"
	"vkgan/train/rundir"
	"vkgan/vk"
)

func TestCheckpointRoundTripExact(t *testing.T) {
	traintest.RequireDevice(t)
	dev, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
	require.NoError(t, err)
	defer dev.Close()
	cfg := traintest.TinyConfig("unused")
	pix := make([]byte, 8*3*32*32)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	data, err := dev.UploadData(pix, 8, 3, 32)
	require.NoError(t, err)
	defer data.Release()
	g1, err := dev.NewGAN(cfg.GANConfig(), data)
	require.NoError(t, err)
	defer g1.Release()
	require.NoError(t, g1.Init(3))
	for i := 0; i < 2; i++ {
		require.NoError(t, g1.Step())
	}
	dir := t.TempDir()
	require.NoError(t, rundir.SaveCheckpoint(dir, g1, cfg, 2, 1.5))
	g2, err := dev.NewGAN(cfg.GANConfig(), data)
	require.NoError(t, err)
	defer g2.Release()
	info, err := rundir.LoadCheckpoint(dir, g2, cfg)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	require.Equal(t, 1.5, info.Elapsed)
	for _, p := range [][2]*engine.ParamSet{{g1.G.Params, g2.G.Params}, {g1.G.Stats, g2.G.Stats}, {g1.D.Params, g2.D.Params}, {g1.D.Stats, g2.D.Stats},
		{g1.G.M, g2.G.M}, {g1.G.V, g2.G.V}, {g1.D.M, g2.D.M}, {g1.D.V, g2.D.V}, {g1.G.EMA, g2.G.EMA}} {
		a, err := p[0].Flat.Bytes()
		require.NoError(t, err)
		b, err := p[1].Flat.Bytes()
		require.NoError(t, err)
		require.True(t, bytes.Equal(a, b), "state differs after a round trip")
	}
	for _, c := range [][2]*engine.Counter{{g1.G.Counter, g2.G.Counter}, {g1.D.Counter, g2.D.Counter}} {
		a, _ := c[0].Value()
		b, _ := c[1].Value()
		require.Equal(t, a, b)
	}
	// The user-facing files carry PyTorch's state_dict names and dtypes.
	ts, _, err := safetensors.ReadFile(filepath.Join(dir, rundir.GFile))
	require.NoError(t, err)
	names := map[string]safetensors.DType{}
	for _, t := range ts {
		names[t.Name] = t.DType
	}
	require.Equal(t, safetensors.F32, names["main.0.weight"])
	require.Equal(t, safetensors.F32, names["main.1.running_var"])
	require.Equal(t, safetensors.I64, names["main.1.num_batches_tracked"])

	// Damaged checkpoints are refused with the file named.
	gpath := filepath.Join(dir, rundir.CheckpointsDir, "step_0000002", rundir.GFile)
	raw, err := os.ReadFile(gpath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(gpath, raw[:len(raw)-5], 0o644))
	_, err = rundir.LoadCheckpoint(dir, g2, cfg)
	var fe *safetensors.FormatError
	require.True(t, errors.As(err, &fe), "got %v", err)
	require.ErrorContains(t, err, gpath)
}
