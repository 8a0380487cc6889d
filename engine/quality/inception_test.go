package quality

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/safetensors"
)

// The network's structure, without weights: 94 units, torchvision's names,
// pytorch-fid's output size and the work of one image.
func TestFIDInceptionStructure(t *testing.T) {
	net, err := engine.FIDInception(64)
	require.NoError(t, err)
	require.Equal(t, []int{engine.InceptionFeatures}, net.Out)
	units := 0
	shapes := map[string][]int{}
	for _, p := range net.Params {
		shapes[p.Name] = p.Shape
		if filepath.Ext(p.Name) == ".weight" && len(p.Shape) == 4 {
			units++
		}
	}
	require.Equal(t, 94, units)
	require.Len(t, net.Stats, 2*94)
	for name, shape := range map[string][]int{
		"Conv2d_1a_3x3.conv.weight":                {32, 3, 3, 3},
		"Mixed_5b.branch_pool.conv.weight":         {32, 192, 1, 1},
		"Mixed_6b.branch7x7_2.conv.weight":         {128, 128, 1, 7},
		"Mixed_6e.branch7x7dbl_4.conv.weight":      {192, 192, 7, 1},
		"Mixed_7a.branch7x7x3_4.conv.weight":       {192, 192, 3, 3},
		"Mixed_7b.branch3x3_2b.conv.weight":        {384, 384, 3, 1},
		"Mixed_7c.branch3x3dbl_3a.bn.running_mean": nil, // a statistic, below
		"Mixed_7c.branch_pool.bn.bias":             {192},
	} {
		if shape != nil {
			require.Equal(t, shape, shapes[name], name)
		}
	}
	require.Equal(t, "Mixed_7c.branch3x3dbl_3a.bn.running_mean", net.Stats[2*91].Name)
	// torchvision counts 5.71 G multiply-adds for Inception-v3 at 299
	// (its fc included: 2 M); ours are FLOPs, two per multiply-add.
	gmac := net.FLOPs() / 2 / 1e9
	require.InDelta(t, 5.71, gmac, 0.03, "G multiply-adds per image")
}

// Bad weights files are errors that say what is wrong.
func TestInceptionWeightsErrors(t *testing.T) {
	_, err := LoadInceptionWeights("")
	require.ErrorIs(t, err, ErrNoInception)
	require.ErrorContains(t, err, "pt_inception-2015-12-05-6726825d.pth")

	dir := t.TempDir()
	_, err = LoadInceptionWeights(filepath.Join(dir, "missing.pth"))
	require.ErrorContains(t, err, "missing.pth")

	junk := filepath.Join(dir, "junk.pth")
	require.NoError(t, os.WriteFile(junk, []byte("not a checkpoint at all"), 0o644))
	_, err = LoadInceptionWeights(junk)
	require.ErrorContains(t, err, "not a safetensors file, and as a PyTorch checkpoint")

	net, err := engine.FIDInception(32)
	require.NoError(t, err)
	var ts []safetensors.Tensor
	for i, s := range append(append([]engine.ParamSpec{}, net.Params...), net.Stats...) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		if i == 6 {
			s.Shape = []int{n} // one of the wrong shape
		}
		if i == 11 {
			continue // one missing
		}
		ts = append(ts, safetensors.Tensor{Name: s.Name, DType: safetensors.F32, Shape: s.Shape, F32: make([]float32, n)})
	}
	ts = append(ts, safetensors.Tensor{Name: "Mixed_9z.conv.weight", DType: safetensors.F32, Shape: []int{1}, F32: []float32{1}},
		safetensors.Tensor{Name: "fc.bias", DType: safetensors.F32, Shape: []int{1008}, F32: make([]float32, 1008)})
	bad := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, safetensors.WriteFile(bad, ts, nil))
	w, err := LoadInceptionWeights(bad)
	require.NoError(t, err)
	_, _, err = w.split(net)
	require.ErrorContains(t, err, "1 tensors missing ("+net.Params[11].Name+")")
	require.ErrorContains(t, err, "1 of the wrong shape ("+net.Params[6].Name)
	require.ErrorContains(t, err, "1 unknown tensors (Mixed_9z.conv.weight)")

	// Truncated: a cut safetensors file is not mistaken for anything.
	raw, err := os.ReadFile(bad)
	require.NoError(t, err)
	cut := filepath.Join(dir, "cut.safetensors")
	require.NoError(t, os.WriteFile(cut, raw[:len(raw)/2], 0o644))
	_, err = LoadInceptionWeights(cut)
	require.Error(t, err)
}

// TestInceptionMatchesPyTorch compares vkgan's FID Inception, block by
// block and at its 2048-d output, with PyTorch's on the random-weight
// network that scripts/fid_inception_ref.py writes into
// $VKGAN_INCEPTION_REF (make crosscheck does), reading the weights from
// each of the three files it writes.
func TestInceptionMatchesPyTorch(t *testing.T) {
	dir := os.Getenv("VKGAN_INCEPTION_REF")
	if dir == "" {
		t.Skip("VKGAN_INCEPTION_REF is not set: make crosscheck runs this with PyTorch's reference")
	}
	d := newTestDevice(t)
	ref, meta, err := safetensors.ReadFile(filepath.Join(dir, "ref.safetensors"))
	require.NoError(t, err)
	side, err := strconv.Atoi(meta["side"])
	require.NoError(t, err)
	byName := map[string]safetensors.Tensor{}
	for _, r := range ref {
		byName[r.Name] = r
	}
	images := byName["images"]
	n := images.Shape[0]

	const rtol = 1e-4
	for _, file := range []string{"inception.pth", "inception-legacy.pth", "inception.safetensors"} {
		t.Run(file, func(t *testing.T) {
			w, err := LoadInceptionWeights(filepath.Join(dir, file))
			require.NoError(t, err)
			inc, err := NewInception(d, w, side, 3) // 3 does not divide n: a short last batch
			require.NoError(t, err)
			defer inc.Release()
			got, err := inc.Features(images.F32, n, nil)
			require.NoError(t, err)
			requireRelClose(t, "features", byName["features"].F32, got, rtol)
		})
	}

	// Block by block: the network cut after each block.
	w, err := LoadInceptionWeights(filepath.Join(dir, "inception.safetensors"))
	require.NoError(t, err)
	full, err := engine.FIDInception(side)
	require.NoError(t, err)
	parts := full.Body.(*engine.Chain).Parts
	block := 0
	for k := 1; k < len(parts); k++ { // part 0 is the resize
		want, ok := byName[fmt.Sprintf("block.%s", blockNames[block])]
		require.True(t, ok, blockNames[block])
		block++
		got := runPrefix(t, d, w, engine.NewChain(parts[:k+1]...), side, images.F32, n)
		requireRelClose(t, want.Name, want.F32, got, rtol)
	}
}

// blockNames are the reference's per-block outputs, in order.
var blockNames = []string{"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
	"Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
	"Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"}

// runPrefix runs the network body on n images and returns its output.
func runPrefix(t *testing.T, d *engine.Device, w *InceptionWeights, body engine.Layer, side int, images []float32, n int) []float32 {
	t.Helper()
	net, err := engine.NewNet("Inception", "", body, []int{3, side, side})
	require.NoError(t, err)
	params, stats, err := w.split(net)
	if err != nil {
		// A prefix lacks the later blocks' tensors: keep only its own.
		params, stats = w.subset(net)
	}
	var owned []*engine.Tensor
	defer func() {
		for _, o := range owned {
			o.Release()
		}
	}()
	keep := func(x *engine.Tensor) { owned = append(owned, x) }
	ps, err := d.NewParamSet(net.Params)
	require.NoError(t, err)
	defer ps.Release()
	ss, err := d.NewParamSet(net.Stats)
	require.NoError(t, err)
	defer ss.Release()
	require.NoError(t, ps.Set(params))
	require.NoError(t, ss.Set(stats))
	x, err := d.FromSlice(images, n, 3, side, side)
	require.NoError(t, err)
	keep(x)
	b, err := net.Bind(d, n, keep)
	require.NoError(t, err)
	require.NoError(t, d.Run(func(r *engine.Recorder) error {
		b.Forward(r, &engine.Pass{Params: ps, Stats: ss}, x)
		return r.Err()
	}))
	out, err := b.Out().X.Download()
	require.NoError(t, err)
	return out
}

// subset is split for a network that uses only some of the file's tensors.
func (w *InceptionWeights) subset(net *engine.Net) (params, stats map[string][]float32) {
	params, stats = map[string][]float32{}, map[string][]float32{}
	for _, s := range net.Params {
		params[s.Name] = w.Tensors[s.Name].Data
	}
	for _, s := range net.Stats {
		stats[s.Name] = w.Tensors[s.Name].Data
	}
	return params, stats
}

// requireRelClose checks max|got-want| <= rtol * max|want|: the features'
// scale, as FID sees them.
func requireRelClose(t *testing.T, name string, want, got []float32, rtol float64) {
	t.Helper()
	require.Len(t, got, len(want), name)
	var maxDiff, maxRef float64
	worst := 0
	for i := range want {
		diff := math.Abs(float64(got[i]) - float64(want[i]))
		if diff > maxDiff || math.IsNaN(diff) {
			maxDiff, worst = diff, i
		}
		maxRef = max(maxRef, math.Abs(float64(want[i])))
	}
	t.Logf("%-22s max|diff| %.3g  (relative to max|want| %.3g: %.2g)", name, maxDiff, maxRef, maxDiff/maxRef)
	if !(maxDiff <= rtol*maxRef) {
		t.Fatalf("%s: element %d is %g, want %g: max|diff| %.3g exceeds %g x max|want| %.3g", name, worst, got[worst], want[worst], maxDiff, rtol, maxRef)
	}
}
