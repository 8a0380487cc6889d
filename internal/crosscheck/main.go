// Command crosscheck runs one DCGAN training step in vkgan and writes
// everything PyTorch needs to repeat it: the initial weights, the real
// batch and noise the step drew, and vkgan's losses, gradients, updated
// weights and samples. scripts/crosscheck.py replays the step with the
// PyTorch example's model and compares (make crosscheck runs both).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"vkgan/engine"
	"vkgan/internal/safetensors"
	"vkgan/train/rundir"
	"vkgan/vk"
)

func main() {
	out := flag.String("out", "crosscheck", "output directory")
	size := flag.Int("size", 32, "model size: 16, 32, 64, 128 or 256")
	width := flag.Int("width", 16, "ngf and ndf")
	batch := flag.Int("batch", 8, "batch size")
	channels := flag.Int("channels", 3, "image channels: 1, 3 or 4")
	// The recipes' settings, as vkgan train takes them.
	cfg := rundir.DefaultConfig()
	flag.StringVar(&cfg.Loss, "loss", "bce", "bce, hinge or ls")
	flag.StringVar(&cfg.DNorm, "d-norm", "batch", "batch or none")
	flag.BoolVar(&cfg.SN, "sn", false, "spectral norm in D")
	flag.BoolVar(&cfg.SNG, "sn-g", false, "spectral norm in G")
	flag.Float64Var(&cfg.R1, "r1", 0, "R1 gamma (taken every step)")
	flag.StringVar(&cfg.Augment, "augment", "", "DiffAugment policy")
	flag.BoolVar(&cfg.Flip, "flip", false, "random flips")
	classes := flag.Int("classes", 0, "a conditional model with this many classes (image i has class i mod classes)")
	flag.Parse()
	cfg.Size, cfg.NGF, cfg.NDF, cfg.Batch, cfg.Seed, cfg.Channels = *size, *width, *width, *batch, 5, *channels
	if *classes > 0 {
		cfg.Cond = true
		for i := range *classes {
			cfg.Classes = append(cfg.Classes, fmt.Sprintf("class%d", i))
		}
	}
	if err := run(*out, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "crosscheck:", err)
		os.Exit(1)
	}
}

func run(out string, cfg rundir.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	size, width, batch, channels := cfg.Size, cfg.NGF, cfg.Batch, cfg.Channels
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dev, err := engine.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer dev.Close()
	// A small synthetic data set: smooth colour gradients, like images.
	n := 3 * batch
	pix := make([]byte, n*channels*size*size)
	for i := range n {
		for c := range channels {
			for y := range size {
				for x := range size {
					pix[((i*channels+c)*size+y)*size+x] = byte((x*(c+1)*7 + y*(i+3)*5 + i*40) % 256)
				}
			}
		}
	}
	data, err := dev.UploadData(pix, n, channels, size)
	if err != nil {
		return err
	}
	defer data.Release()
	if k := len(cfg.Classes); k > 0 {
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = int32(i % k)
		}
		if err := data.SetLabels(labels, k); err != nil {
			return err
		}
	}
	gan, err := dev.NewGAN(cfg.GANConfig(), data)
	if err != nil {
		return err
	}
	defer gan.Release()
	if err := gan.Init(cfg.Seed); err != nil {
		return err
	}
	save := func(name string, ts []safetensors.Tensor) error {
		return safetensors.WriteFile(filepath.Join(out, name), ts, nil)
	}
	set := func(prefix string, net *engine.Net, ps *engine.ParamSet) ([]safetensors.Tensor, error) {
		v, err := ps.Get()
		if err != nil {
			return nil, err
		}
		var ts []safetensors.Tensor
		for _, s := range ps.Specs {
			ts = append(ts, safetensors.Tensor{Name: prefix + s.Name, DType: safetensors.F32, Shape: s.Shape, F32: v[s.Name]})
		}
		return ts, nil
	}
	snapshot := func(file string) error {
		var all []safetensors.Tensor
		for _, s := range []struct {
			prefix string
			net    *engine.Net
			ps     *engine.ParamSet
		}{{"G.", gan.G.Net, gan.G.Params}, {"G.", gan.G.Net, gan.G.Stats}, {"D.", gan.D.Net, gan.D.Params}, {"D.", gan.D.Net, gan.D.Stats}} {
			ts, err := set(s.prefix, s.net, s.ps)
			if err != nil {
				return err
			}
			all = append(all, ts...)
		}
		return save(file, all)
	}
	if err := snapshot("init.safetensors"); err != nil {
		return err
	}
	if err := gan.Step(); err != nil {
		return err
	}
	if err := snapshot("after.safetensors"); err != nil {
		return err
	}
	var grads []safetensors.Tensor
	for _, s := range []struct {
		prefix string
		ps     *engine.ParamSet
	}{{"G.", gan.G.Grads}, {"D.", gan.D.Grads}} {
		ts, err := set(s.prefix, nil, s.ps)
		if err != nil {
			return err
		}
		grads = append(grads, ts...)
	}
	if err := save("grads.safetensors", grads); err != nil {
		return err
	}
	real, err := gan.RealBatch().Download()
	if err != nil {
		return err
	}
	z, err := gan.Noise().Download()
	if err != nil {
		return err
	}
	m, err := gan.ReadMetrics()
	if err != nil {
		return err
	}
	// vkgan's own samples from its updated G, for the load-into-PyTorch check.
	s, err := gan.NewSampler(batch, false, true)
	if err != nil {
		return err
	}
	defer s.Release()
	fixed := rundir.FixedNoise(99, batch, cfg.NZ)
	img, err := s.Sample(fixed)
	if err != nil {
		return err
	}
	meta := map[string]string{
		"loss_d": f(m.LossD), "loss_g": f(m.LossG), "d_x": f(m.DX), "d_g_z1": f(m.DGZ1), "d_g_z2": f(m.DGZ2),
		"lr": f(cfg.LRD), "beta1": f(cfg.Beta1), "beta2": f(cfg.Beta2), "size": strconv.Itoa(size), "channels": strconv.Itoa(channels),
		"nz": strconv.Itoa(cfg.NZ), "ngf": strconv.Itoa(width), "ndf": strconv.Itoa(width), "batch": strconv.Itoa(batch),
	}
	io := []safetensors.Tensor{
		{Name: "real", DType: safetensors.F32, Shape: []int{batch, channels, size, size}, F32: real},
		{Name: "z", DType: safetensors.F32, Shape: []int{batch, cfg.NZ, 1, 1}, F32: z},
		{Name: "sample_z", DType: safetensors.F32, Shape: []int{batch, cfg.NZ, 1, 1}, F32: fixed},
		{Name: "sample", DType: safetensors.F32, Shape: []int{batch, channels, size, size}, F32: img},
	}
	meta["loss"], meta["d_norm"], meta["sn"], meta["sn_g"] = cfg.Loss, cfg.DNorm, strconv.FormatBool(cfg.SN), strconv.FormatBool(cfg.SNG)
	meta["r1"], meta["r1_penalty"], meta["augment"], meta["flip"] = f(cfg.R1), f(m.R1), cfg.Augment, strconv.FormatBool(cfg.Flip)
	meta["classes"], meta["class_dim"] = strconv.Itoa(len(cfg.Classes)), strconv.Itoa(cfg.ClassDim)
	// What the step drew beside the batch and the noise: each augmented
	// batch's parameters and the one-hot labels.
	extra := map[string]*engine.Tensor{}
	for i, p := range gan.AugmentParams() {
		extra[fmt.Sprintf("augment%d", i)] = p
	}
	extra["labels_real"], extra["labels_fake"] = gan.Labels()
	for name, t := range extra {
		if t == nil {
			continue
		}
		v, err := t.Download()
		if err != nil {
			return err
		}
		io = append(io, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: t.Shape(), F32: v})
	}
	if err := safetensors.WriteFile(filepath.Join(out, "step.safetensors"), io, meta); err != nil {
		return err
	}
	// The user-facing checkpoint files, to load with load_state_dict.
	if err := cfg.Save(filepath.Join(out, rundir.ConfigFile)); err != nil {
		return err
	}
	return rundir.SaveCheckpoint(out, gan, cfg, 1, 0)
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', 17, 64) }
