package engine

import "fmt"

// Sampler runs G alone at a fixed batch size: z in, images in [-1, 1] out.
type Sampler struct {
	g        *GAN
	n        int
	z        *Tensor
	gBound   Bound
	rec      *Recorder
	owned    []*Tensor
	ema      bool
	batchBN  bool
	recorded *ParamSet
	labels   *Tensor // one-hot classes of a conditional G, else nil
	classes  int
}

// NewSampler prepares G for batches of n latent vectors. With ema it uses
// the averaged weights (when the GAN keeps them). With batchStats, batch
// norm normalises with the batch's own statistics, as PyTorch's example
// does when it saves samples (its G stays in training mode); without, with
// the running statistics (eval mode).
func (g *GAN) NewSampler(n int, ema, batchStats bool) (*Sampler, error) {
	if n < 1 {
		return nil, fmt.Errorf("engine: sampler: batch %d must be positive", n)
	}
	if batchStats && n < 2 {
		return nil, fmt.Errorf("engine: sampler: batch statistics need at least 2 samples")
	}
	s := &Sampler{g: g, n: n, ema: ema && g.G.EMA != nil, batchBN: batchStats}
	keep := func(t *Tensor) { s.owned = append(s.owned, t) }
	var err error
	if s.z, err = g.d.NewTensor(append([]int{n}, g.G.Net.In...)...); err != nil {
		return nil, err
	}
	keep(s.z)
	if s.gBound, err = g.G.Net.bindForward(g.d, n, nil, keep); err != nil {
		s.Release()
		return nil, err
	}
	if s.classes = conditionalClasses(g.cfg); s.classes > 0 {
		if s.labels, err = g.d.NewTensor(n, s.classes); err != nil {
			s.Release()
			return nil, err
		}
		keep(s.labels)
		cycle := make([]int, n)
		for i := range cycle {
			cycle[i] = i % s.classes
		}
		if err := s.SetClasses(cycle); err != nil {
			s.Release()
			return nil, err
		}
	}
	params := g.G.Params
	if s.ema {
		params = g.G.EMA
	}
	// Momentum 0: sampling never moves the running statistics.
	pass := &Pass{Params: params, Stats: g.G.Stats, Train: batchStats, Labels: s.labels}
	if s.rec, err = g.d.recordSized(func(r *Recorder) { s.gBound.Forward(r, pass, s.z) }); err != nil {
		s.Release()
		return nil, err
	}
	return s, nil
}

// Classes is the number of classes G is conditional on (0: none).
func (s *Sampler) Classes() int { return s.classes }

// SetClasses sets the class of each of the n samples of a conditional G
// (the default is sample i of class i mod Classes).
func (s *Sampler) SetClasses(classes []int) error {
	if s.classes == 0 {
		return fmt.Errorf("engine: sampler: G is not conditional")
	}
	if len(classes) != s.n {
		return fmt.Errorf("engine: sampler: %d classes for %d samples", len(classes), s.n)
	}
	onehot := make([]float32, s.n*s.classes)
	for i, c := range classes {
		if c < 0 || c >= s.classes {
			return fmt.Errorf("engine: sampler: class %d of sample %d is not in 0..%d", c, i, s.classes-1)
		}
		onehot[i*s.classes+c] = 1
	}
	return s.labels.Upload(onehot)
}

// Sample maps z (n x NZ values) to n images (NCHW, n x C x S x S).
func (s *Sampler) Sample(z []float32) ([]float32, error) {
	if err := s.z.Upload(z); err != nil {
		return nil, err
	}
	if err := s.rec.Submit(); err != nil {
		return nil, err
	}
	return s.Output().Download()
}

// Output is the tensor holding the last batch of images, on the device
// (the viewer reads it there).
func (s *Sampler) Output() *Tensor { return s.gBound.Out().X }

// Release frees the sampler.
func (s *Sampler) Release() {
	if s == nil {
		return
	}
	s.rec.Release()
	s.rec = nil
	for _, t := range s.owned {
		t.Release()
	}
	s.owned = nil
}
