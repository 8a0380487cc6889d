package quality

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"vkgan/engine"
	"vkgan/internal/safetensors"
	"vkgan/internal/torchfile"
)

// FIDMode names the feature extractor and its preprocessing in outputs
// ("fid_mode"): pytorch-fid's, so the numbers compare with its.
const FIDMode = "pytorch-fid"

// InceptionURL is where pytorch-fid publishes the FID Inception weights.
const InceptionURL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

// InceptionEnv names the environment variable that gives the weights file
// when no -inception flag does.
const InceptionEnv = "VKGAN_INCEPTION"

// ErrNoInception is returned (wrapped) when no weights file is given.
var ErrNoInception = errors.New("FID and KID need the Inception weights: download " + InceptionURL +
	" and pass it with -inception FILE (or set " + InceptionEnv + ")")

// InceptionWeights are the FID Inception's tensors read from a file, with
// the SHA-256 of the file (part of a reference-statistics cache key).
type InceptionWeights struct {
	Path    string
	SHA256  string
	Tensors map[string]WeightTensor
}

// WeightTensor is one named tensor of a weights file.
type WeightTensor struct {
	Shape []int
	Data  []float32
}

// InceptionPath is the weights file to use: flag when not "", else
// $VKGAN_INCEPTION; "" when neither is set.
func InceptionPath(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(InceptionEnv)
}

// LoadInceptionWeights reads pytorch-fid's weights as published (a PyTorch
// checkpoint, zip or legacy format) or a safetensors copy of them. An
// empty path is ErrNoInception.
func LoadInceptionWeights(path string) (*InceptionWeights, error) {
	if path == "" {
		return nil, ErrNoInception
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("quality: Inception weights: %w", err)
	}
	sum := sha256.Sum256(raw)
	w := &InceptionWeights{Path: path, SHA256: hex.EncodeToString(sum[:]), Tensors: map[string]WeightTensor{}}
	switch {
	case isSafetensors(raw):
		ts, _, err := safetensors.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("quality: Inception weights %q: %w", path, err)
		}
		for _, t := range ts {
			if t.DType != safetensors.F32 {
				if strings.HasSuffix(t.Name, "num_batches_tracked") {
					continue
				}
				return nil, fmt.Errorf("quality: Inception weights %q: tensor %q is %s, want F32", path, t.Name, t.DType)
			}
			w.Tensors[t.Name] = WeightTensor{Shape: t.Shape, Data: t.F32}
		}
	default:
		ts, err := torchfile.Read(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return nil, fmt.Errorf("quality: Inception weights %q: not a safetensors file, and as a PyTorch checkpoint: %w", path, err)
		}
		for name, t := range ts {
			if t.F32 == nil {
				if ignorable(name) {
					continue
				}
				return nil, fmt.Errorf("quality: Inception weights %q: tensor %q is %s, want a floating type", path, name, t.DType)
			}
			w.Tensors[name] = WeightTensor{Shape: t.Shape, Data: t.F32}
		}
	}
	return w, nil
}

// isSafetensors recognises a safetensors file: a little-endian header
// length that fits the file, then a JSON object.
func isSafetensors(b []byte) bool {
	if len(b) < 9 {
		return false
	}
	n := binary.LittleEndian.Uint64(b[:8])
	return n > 0 && n <= uint64(len(b)-8) && b[8] == '{'
}

// ignorable are tensors a weights file may hold that the feature network
// does not use: the classifier, the auxiliary head and the batch counters.
func ignorable(name string) bool {
	return strings.HasPrefix(name, "fc.") || strings.HasPrefix(name, "AuxLogits.") || strings.HasSuffix(name, ".num_batches_tracked")
}

// split sorts the file's tensors into the network's parameters and
// statistics, checking every name and shape.
func (w *InceptionWeights) split(net *engine.Net) (params, stats map[string][]float32, err error) {
	params, stats = map[string][]float32{}, map[string][]float32{}
	want := map[string]bool{}
	var missing, wrong []string
	take := func(specs []engine.ParamSpec, into map[string][]float32) {
		for _, s := range specs {
			want[s.Name] = true
			t, ok := w.Tensors[s.Name]
			switch {
			case !ok:
				missing = append(missing, s.Name)
			case !slices.Equal(t.Shape, s.Shape):
				wrong = append(wrong, fmt.Sprintf("%s is %v, want %v", s.Name, t.Shape, s.Shape))
			default:
				into[s.Name] = t.Data
			}
		}
	}
	take(net.Params, params)
	take(net.Stats, stats)
	var extra []string
	for name := range w.Tensors {
		if !want[name] && !ignorable(name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d tensors missing (%s)", len(missing), firstFew(missing)))
	}
	if len(wrong) > 0 {
		problems = append(problems, fmt.Sprintf("%d of the wrong shape (%s)", len(wrong), firstFew(wrong)))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("%d unknown tensors (%s)", len(extra), firstFew(extra)))
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("quality: %q is not the FID Inception's state_dict: %s; use pytorch-fid's %s",
			w.Path, strings.Join(problems, "; "), InceptionURL[strings.LastIndex(InceptionURL, "/")+1:])
	}
	return params, stats, nil
}

func firstFew(s []string) string {
	if len(s) > 3 {
		return strings.Join(s[:3], ", ") + ", ..."
	}
	return strings.Join(s, ", ")
}

// Inception computes FID features on a device: a batch of images in,
// their 2048-d pool features out. The forward pass is recorded once and
// replayed for every batch.
type Inception struct {
	net           *engine.Net
	params, stats *engine.ParamSet
	in            *engine.Tensor
	out           *engine.Tensor
	rec           *engine.Recorder
	owned         []*engine.Tensor
	batch, side   int
	Weights       string // SHA-256 of the weights file
}

// NewInception uploads w and records the network for batches of batch
// 3-channel images of side x side.
func NewInception(d *engine.Device, w *InceptionWeights, side, batch int) (*Inception, error) {
	if batch < 1 || side < 1 {
		return nil, fmt.Errorf("quality: Inception for batch %d of %dx%d images", batch, side, side)
	}
	net, err := engine.FIDInception(side)
	if err != nil {
		return nil, err
	}
	pv, sv, err := w.split(net)
	if err != nil {
		return nil, err
	}
	inc := &Inception{net: net, batch: batch, side: side, Weights: w.SHA256}
	ok := false
	defer func() {
		if !ok {
			inc.Release()
		}
	}()
	if inc.params, err = d.NewParamSet(net.Params); err != nil {
		return nil, err
	}
	if inc.stats, err = d.NewParamSet(net.Stats); err != nil {
		return nil, err
	}
	if err := inc.params.Set(pv); err != nil {
		return nil, err
	}
	if err := inc.stats.Set(sv); err != nil {
		return nil, err
	}
	keep := func(t *engine.Tensor) { inc.owned = append(inc.owned, t) }
	if inc.in, err = d.NewTensor(batch, 3, side, side); err != nil {
		return nil, err
	}
	keep(inc.in)
	bound, err := net.Bind(d, batch, keep)
	if err != nil {
		return nil, err
	}
	inc.out = bound.Out().X
	if inc.rec, err = d.Record(); err != nil {
		return nil, err
	}
	bound.Forward(inc.rec, &engine.Pass{Params: inc.params, Stats: inc.stats}, inc.in)
	if err := inc.rec.Err(); err != nil {
		return nil, err
	}
	ok = true
	return inc, nil
}

// Batch is the number of images per recorded pass.
func (inc *Inception) Batch() int { return inc.batch }

// FLOPs is the work of one image's forward pass.
func (inc *Inception) FLOPs() float64 { return inc.net.FLOPs() }

// Features returns the 2048-d features of n images (NCHW, 3 channels,
// values in [-1, 1]; n*3*side*side values), n*2048 values in image order.
// progress, if not nil, is called after each batch with the images done.
func (inc *Inception) Features(images []float32, n int, progress func(done int)) ([]float32, error) {
	per := 3 * inc.side * inc.side
	if n < 0 || len(images) != n*per {
		return nil, fmt.Errorf("quality: features: %d values for %d images of 3x%dx%d", len(images), n, inc.side, inc.side)
	}
	out := make([]float32, 0, n*engine.InceptionFeatures)
	buf := make([]float32, inc.batch*per)
	for i := 0; i < n; i += inc.batch {
		k := min(inc.batch, n-i)
		// A short last batch is padded with copies of its first image.
		copy(buf, images[i*per:(i+k)*per])
		for j := k; j < inc.batch; j++ {
			copy(buf[j*per:(j+1)*per], images[i*per:(i+1)*per])
		}
		if err := inc.in.Upload(buf); err != nil {
			return nil, err
		}
		if err := inc.rec.Submit(); err != nil {
			return nil, fmt.Errorf("quality: Inception forward pass: %w", err)
		}
		f, err := inc.out.Download()
		if err != nil {
			return nil, err
		}
		out = append(out, f[:k*engine.InceptionFeatures]...)
		if progress != nil {
			progress(i + k)
		}
	}
	return out, nil
}

// Release frees the network's device memory. Safe on nil and twice.
func (inc *Inception) Release() {
	if inc == nil {
		return
	}
	inc.rec.Release()
	inc.rec = nil
	for _, t := range inc.owned {
		t.Release()
	}
	inc.owned = nil
	inc.params.Release()
	inc.stats.Release()
	inc.params, inc.stats = nil, nil
}
