package engine

import (
	"fmt"
	"math/rand/v2"
)

// DCGAN is the shape of the DCGAN in PyTorch's examples repository
// (dcgan/main.py): a generator of transposed convolutions with batch norm
// and ReLU ending in tanh, and a discriminator of strided convolutions with
// LeakyReLU(0.2) and batch norm on all but the first, ending in one logit.
// Size 64 is the example's model; size 32 has one stage fewer in each.
type DCGAN struct {
	Size     int // image side: 32 or 64
	NZ       int // latent size (example: 100)
	NGF, NDF int // generator / discriminator width (example: 64)
	Channels int // image channels (3)
}

// PyTorch's BatchNorm2d defaults and the example's LeakyReLU slope.
const (
	bnMomentum  = 0.1
	bnEps       = 1e-5
	leakySlope  = 0.2
	initStd     = 0.02 // N(0, 0.02) conv weights, N(1, 0.02) BN weights
	maxDCGANDim = 1 << 14
)

// Validate checks the shape.
func (c DCGAN) Validate() error {
	if c.Size != 32 && c.Size != 64 {
		return fmt.Errorf("engine: dcgan: image size %d must be 32 or 64", c.Size)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"nz", c.NZ}, {"ngf", c.NGF}, {"ndf", c.NDF}, {"channels", c.Channels}} {
		if v.v < 1 || v.v > maxDCGANDim {
			return fmt.Errorf("engine: dcgan: %s = %d must be in 1..%d", v.name, v.v, maxDCGANDim)
		}
	}
	return nil
}

type actKind int

const (
	actNone actKind = iota
	actReLU
	actLeaky
	actTanh
)

// stage is one conv (or transposed conv), optional batch norm and an
// activation, with PyTorch's nn.Sequential names.
type stage struct {
	deconv         bool
	cin, cout      int
	k, s, p        int
	inHW, outHW    int
	bn             bool
	act            actKind
	weight, bnName string
}

// Net is one of the two networks: its stages and the names and shapes of
// its trainable parameters and batch-norm running statistics.
type Net struct {
	Name   string
	stages []stage
	In     []int // per-sample input shape
	Out    []int // per-sample output shape
	Params []ParamSpec
	Stats  []ParamSpec // running_mean / running_var per batch norm
}

// Generator returns G's definition.
func (c DCGAN) Generator() *Net {
	mult := c.Size / 8 // 64: 8, 4, 2, 1; 32: 4, 2, 1
	n := &Net{Name: "G", In: []int{c.NZ, 1, 1}, Out: []int{c.Channels, c.Size, c.Size}}
	cin, hw, idx := c.NZ, 1, 0
	for mult >= 1 {
		st := stage{deconv: true, cin: cin, cout: c.NGF * mult, k: 4, s: 2, p: 1, inHW: hw, bn: true, act: actReLU}
		if idx == 0 {
			st.s, st.p = 1, 0
		}
		st.outHW = (hw-1)*st.s - 2*st.p + st.k
		st.weight = fmt.Sprintf("main.%d.weight", idx)
		st.bnName = fmt.Sprintf("main.%d", idx+1)
		n.stages = append(n.stages, st)
		cin, hw, idx, mult = st.cout, st.outHW, idx+3, mult/2
	}
	last := stage{deconv: true, cin: cin, cout: c.Channels, k: 4, s: 2, p: 1, inHW: hw, outHW: 2 * hw, act: actTanh,
		weight: fmt.Sprintf("main.%d.weight", idx)}
	n.stages = append(n.stages, last)
	n.define()
	return n
}

// Discriminator returns D's definition; its output is one logit per image
// (the example's Sigmoid is folded into the loss).
func (c DCGAN) Discriminator() *Net {
	n := &Net{Name: "D", In: []int{c.Channels, c.Size, c.Size}, Out: []int{1, 1, 1}}
	cin, hw, idx, mult := c.Channels, c.Size, 0, 1
	for hw > 4 {
		st := stage{cin: cin, cout: c.NDF * mult, k: 4, s: 2, p: 1, inHW: hw, outHW: hw / 2, act: actLeaky,
			bn: idx > 0, weight: fmt.Sprintf("main.%d.weight", idx)}
		if st.bn {
			st.bnName = fmt.Sprintf("main.%d", idx+1)
			idx += 3
		} else {
			idx += 2
		}
		n.stages = append(n.stages, st)
		cin, hw, mult = st.cout, st.outHW, mult*2
	}
	n.stages = append(n.stages, stage{cin: cin, cout: 1, k: 4, s: 1, p: 0, inHW: 4, outHW: 1, act: actNone,
		weight: fmt.Sprintf("main.%d.weight", idx)})
	n.define()
	return n
}

func (n *Net) define() {
	for _, st := range n.stages {
		wshape := []int{st.cout, st.cin, st.k, st.k}
		if st.deconv {
			wshape = []int{st.cin, st.cout, st.k, st.k}
		}
		n.Params = append(n.Params, ParamSpec{st.weight, wshape})
		if st.bn {
			n.Params = append(n.Params, ParamSpec{st.bnName + ".weight", []int{st.cout}}, ParamSpec{st.bnName + ".bias", []int{st.cout}})
			n.Stats = append(n.Stats, ParamSpec{st.bnName + ".running_mean", []int{st.cout}}, ParamSpec{st.bnName + ".running_var", []int{st.cout}})
		}
	}
}

// BatchNorms lists the batch-norm module names ("main.1", ...), whose
// num_batches_tracked a checkpoint records.
func (n *Net) BatchNorms() []string {
	var out []string
	for _, st := range n.stages {
		if st.bn {
			out = append(out, st.bnName)
		}
	}
	return out
}

// Init returns the example's initialisation: conv weights N(0, 0.02),
// batch-norm weights N(1, 0.02), biases 0; running mean 0 and var 1.
func (n *Net) Init(rng *rand.Rand) (params, stats map[string][]float32) {
	params = map[string][]float32{}
	for _, p := range n.Params {
		v := make([]float32, prod(p.Shape))
		switch {
		case len(p.Name) > 7 && p.Name[len(p.Name)-7:] == ".weight" && len(p.Shape) == 1:
			for i := range v {
				v[i] = float32(1 + initStd*rng.NormFloat64())
			}
		case len(p.Shape) == 4:
			for i := range v {
				v[i] = float32(initStd * rng.NormFloat64())
			}
		}
		params[p.Name] = v
	}
	stats = map[string][]float32{}
	for _, s := range n.Stats {
		v := make([]float32, prod(s.Shape))
		if s.Name[len(s.Name)-4:] == "_var" {
			for i := range v {
				v[i] = 1
			}
		}
		stats[s.Name] = v
	}
	return params, stats
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// FLOPs is the multiply-add work (x2) of one forward pass per image.
func (n *Net) FLOPs() float64 {
	var f float64
	for _, st := range n.stages {
		if st.deconv {
			f += 2 * float64(st.cin*st.inHW*st.inHW) * float64(st.cout*st.k*st.k)
		} else {
			f += 2 * float64(st.cout*st.outHW*st.outHW) * float64(st.cin*st.k*st.k)
		}
	}
	return f
}

// netActs are one network's activations and gradients at a fixed batch.
type netActs struct {
	batch  int
	a      []*Tensor // conv output per stage
	b      []*Tensor // batch-norm output per stage (nil without bn)
	mean   []*Tensor // saved batch statistics
	invstd []*Tensor
	dh     []*Tensor // gradient w.r.t. each stage's activated output
	da     []*Tensor // gradient w.r.t. the conv output (bn stages)
	dgs    []*Tensor // scratch batch-norm weight gradients
	dbs    []*Tensor
	prob   *Tensor // sigmoid of the logits, for mean D outputs
}

func (n *Net) newActs(d *Device, batch int, keep func(*Tensor)) (*netActs, error) {
	na := &netActs{batch: batch}
	alloc := func(shape ...int) (*Tensor, error) {
		t, err := d.NewTensor(shape...)
		if err == nil {
			keep(t)
		}
		return t, err
	}
	for _, st := range n.stages {
		a, err := alloc(batch, st.cout, st.outHW, st.outHW)
		if err != nil {
			return nil, err
		}
		dh, err := alloc(batch, st.cout, st.outHW, st.outHW)
		if err != nil {
			return nil, err
		}
		na.a, na.dh = append(na.a, a), append(na.dh, dh)
		var b, mean, inv, da, dg, db *Tensor
		if st.bn {
			for _, p := range []**Tensor{&b, &da} {
				if *p, err = alloc(batch, st.cout, st.outHW, st.outHW); err != nil {
					return nil, err
				}
			}
			for _, p := range []**Tensor{&mean, &inv, &dg, &db} {
				if *p, err = alloc(st.cout); err != nil {
					return nil, err
				}
			}
		}
		na.b, na.mean, na.invstd, na.da = append(na.b, b), append(na.mean, mean), append(na.invstd, inv), append(na.da, da)
		na.dgs, na.dbs = append(na.dgs, dg), append(na.dbs, db)
	}
	var err error
	if na.prob, err = alloc(batch, prod(n.Out)); err != nil {
		return nil, err
	}
	return na, nil
}

// output is the activated output of stage i.
func (na *netActs) output(i int) *Tensor {
	if na.b[i] != nil {
		return na.b[i]
	}
	return na.a[i]
}

// forward records the network on x. With train, batch norm uses batch
// statistics and updates the running ones with momentum (0 keeps them:
// sampling from a trained G); without, it uses the running statistics.
func (n *Net) forward(r *Recorder, ps, stats *ParamSet, na *netActs, x *Tensor, train bool, momentum float32) error {
	for i, st := range n.stages {
		p := ConvParams{StrideH: st.s, StrideW: st.s, PadH: st.p, PadW: st.p}
		w := ps.T(st.weight)
		var err error
		if st.deconv {
			err = r.ConvTranspose2D(na.a[i], x, w, p)
		} else {
			err = r.Conv2D(na.a[i], x, w, p)
		}
		if err != nil {
			return err
		}
		h := na.a[i]
		if st.bn {
			g, b := ps.T(st.bnName+".weight"), ps.T(st.bnName+".bias")
			rm, rv := stats.T(st.bnName+".running_mean"), stats.T(st.bnName+".running_var")
			if train {
				err = r.BatchNormTrain(na.b[i], h, g, b, rm, rv, na.mean[i], na.invstd[i], momentum, bnEps)
			} else {
				err = r.BatchNormInference(na.b[i], h, g, b, rm, rv, bnEps)
			}
			if err != nil {
				return err
			}
			h = na.b[i]
		}
		switch st.act {
		case actReLU:
			err = r.ReLU(h, h)
		case actLeaky:
			err = r.LeakyReLU(h, h, leakySlope)
		case actTanh:
			err = r.Tanh(h, h)
		}
		if err != nil {
			return err
		}
		x = h
	}
	return nil
}

// backward records the gradients of the network given dOut, the gradient
// with respect to its output, already in na.dh[last]. It writes weight
// gradients into grads (accumulating when accumulate is set; none at all
// when grads is nil) and, when dx is non-nil, the input gradient into dx.
// x is the input the forward pass saw.
func (n *Net) backward(r *Recorder, ps, grads *ParamSet, na *netActs, x, dx *Tensor, accumulate bool) error {
	for i := len(n.stages) - 1; i >= 0; i-- {
		st := n.stages[i]
		h, dh := na.output(i), na.dh[i]
		var err error
		switch st.act {
		case actReLU:
			err = r.ReLUBackward(dh, dh, h)
		case actLeaky:
			err = r.LeakyReLUBackward(dh, dh, h, leakySlope)
		case actTanh:
			err = r.TanhBackward(dh, dh, h)
		}
		if err != nil {
			return err
		}
		g := dh
		if st.bn {
			dgamma, dbeta := na.dgs[i], na.dbs[i]
			if grads != nil && !accumulate {
				dgamma, dbeta = grads.T(st.bnName+".weight"), grads.T(st.bnName+".bias")
			}
			if err := r.BatchNormBackward(na.da[i], dgamma, dbeta, dh, na.a[i], ps.T(st.bnName+".weight"), na.mean[i], na.invstd[i]); err != nil {
				return err
			}
			if grads != nil && accumulate {
				if err := r.Axpy(grads.T(st.bnName+".weight"), dgamma, 1); err != nil {
					return err
				}
				if err := r.Axpy(grads.T(st.bnName+".bias"), dbeta, 1); err != nil {
					return err
				}
			}
			g = na.da[i]
		}
		in := x
		if i > 0 {
			in = na.output(i - 1)
		}
		p := ConvParams{StrideH: st.s, StrideW: st.s, PadH: st.p, PadW: st.p, Accumulate: accumulate}
		w := ps.T(st.weight)
		if grads != nil {
			if st.deconv {
				err = r.ConvTranspose2DBackwardWeights(grads.T(st.weight), g, in, p)
			} else {
				err = r.Conv2DBackwardWeights(grads.T(st.weight), g, in, p)
			}
			if err != nil {
				return err
			}
		}
		din := dx
		if i > 0 {
			din = na.dh[i-1]
		}
		if din == nil {
			continue
		}
		p.Accumulate = false
		if st.deconv {
			err = r.ConvTranspose2DBackwardData(din, g, w, p)
		} else {
			err = r.Conv2DBackwardData(din, g, w, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
