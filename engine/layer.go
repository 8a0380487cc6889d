package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// A network is a tree of layers. A Layer describes one module: the names
// and shapes of its state (as PyTorch's state_dict names them), how that
// state is initialised, and, once bound to a batch size, how its forward
// and backward passes are recorded. Models are constructors over layers
// (see DCGAN); the GAN step works on any of them.
type Layer interface {
	// Name is the module's state_dict prefix ("main.0"); set by its
	// parent (Sequential) before Declare.
	Name() string
	SetName(name string)
	// Declare fixes the per-sample input shape, returning the output shape
	// and the layer's parameters and running statistics (full names).
	Declare(in []int) (out []int, params, stats []ParamSpec, err error)
	// Init writes the layer's initial parameters and statistics into the
	// maps, drawing from rng in declaration order.
	Init(rng *rand.Rand, params, stats map[string][]float32)
	// Bind allocates the layer's activations for a batch. prev is the
	// previous layer's output (nil tensors for a network's first layer,
	// whose input varies from pass to pass); in-place layers reuse it.
	// Every tensor allocated goes to keep, which owns it.
	Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error)
}

// Port is a layer's output activation and the buffer that receives the
// gradient with respect to it.
type Port struct {
	X, DX *Tensor
	// grads is where the layers after this one take their output
	// gradients (see gradPool); nil: each allocates its own.
	grads *gradPool
}

// Bound is a layer bound to a batch size, with its activations.
type Bound interface {
	// Out is the layer's output and its gradient buffer.
	Out() Port
	// Forward records the layer on x, writing Out().X.
	Forward(r *Recorder, p *Pass, x *Tensor)
	// Backward records the gradients from Out().DX: weight gradients into
	// p.Grads (added to them with p.Accumulate; none when p.Grads is nil)
	// and, when dx is not nil, the input gradient into dx. x is the input
	// the forward pass saw.
	Backward(r *Recorder, p *Pass, x, dx *Tensor)
}

// Pass is the state one recorded pass of a network reads and writes.
// Errors go to the Recorder's sticky error.
type Pass struct {
	Params, Stats *ParamSet
	Grads         *ParamSet // nil: no weight gradients
	Accumulate    bool      // add weight gradients to Grads
	// Train uses batch statistics in batch norm and updates the running
	// ones with Momentum (0 leaves them: sampling from a trained G);
	// otherwise batch norm uses the running statistics. Spectral norm's
	// power iteration likewise runs only with Train and a nonzero Momentum.
	Train    bool
	Momentum float32
	// Labels are the batch's classes as one-hot rows [batch, classes]
	// (GatherLabels, DrawLabels), read by the class-conditional layers
	// (ClassEmbedding, Projection); nil for an unconditional network.
	Labels *Tensor
}

// BatchTracker is a layer that counts batches as PyTorch's batch norm
// does (num_batches_tracked in its state_dict).
type BatchTracker interface{ TracksBatches() bool }

// Sequential runs its children in order and names them as nn.Sequential
// does: the child at index i is Name()+"."+i.
type Sequential struct {
	name   string
	Layers []Layer
}

// NewSequential returns a Sequential of layers.
func NewSequential(layers ...Layer) *Sequential { return &Sequential{Layers: layers} }

func (s *Sequential) Name() string { return s.name }

// SetName names s and, after it, each child by its index.
func (s *Sequential) SetName(name string) {
	s.name = name
	for i, l := range s.Layers {
		l.SetName(joinName(name, fmt.Sprint(i)))
	}
}

func joinName(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (s *Sequential) Declare(in []int) (out []int, params, stats []ParamSpec, err error) {
	return declareAll(s.Layers, in)
}

func (s *Sequential) Init(rng *rand.Rand, params, stats map[string][]float32) {
	for _, l := range s.Layers {
		l.Init(rng, params, stats)
	}
}

func (s *Sequential) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	return bindChildren(s.Layers, d, batch, prev, keep, nil)
}

// bindInto binds the children with out as the last one's output.
func (s *Sequential) bindInto(d *Device, batch int, prev Port, out *Tensor, keep func(*Tensor)) (Bound, error) {
	return bindChildren(s.Layers, d, batch, prev, keep, func(l Layer, prev Port) (Bound, error) {
		in, ok := l.(intoBinder)
		if !ok {
			return nil, fmt.Errorf("cannot write its output into a given tensor")
		}
		return in.bindInto(d, batch, prev, out, keep)
	})
}

// intoBinder is a layer that can write its output into a tensor its
// caller arranged (a view of a larger buffer) instead of its own.
type intoBinder interface {
	bindInto(d *Device, batch int, prev Port, out *Tensor, keep func(*Tensor)) (Bound, error)
}

type boundSequential struct{ layers []Bound }

func (b *boundSequential) Out() Port { return b.layers[len(b.layers)-1].Out() }

func (b *boundSequential) Forward(r *Recorder, p *Pass, x *Tensor) {
	for _, l := range b.layers {
		l.Forward(r, p, x)
		x = l.Out().X
	}
}

func (b *boundSequential) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	for i := len(b.layers) - 1; i >= 0; i-- {
		in, din := x, dx
		if i > 0 {
			prev := b.layers[i-1].Out()
			in, din = prev.X, prev.DX
		}
		b.layers[i].Backward(r, p, in, din)
	}
}

// walk calls fn on l and every layer below it, in order.
func walk(l Layer, fn func(Layer)) {
	fn(l)
	if p, ok := l.(parent); ok {
		for _, c := range p.children() {
			walk(c, fn)
		}
	}
}

// parent is a layer made of other layers.
type parent interface{ children() []Layer }

func (s *Sequential) children() []Layer { return s.Layers }

// Net is one network: its layers and the names and shapes of its state.
type Net struct {
	Name   string // "G" or "D"
	Body   Layer
	In     []int // per-sample input shape
	Out    []int // per-sample output shape
	Params []ParamSpec
	Stats  []ParamSpec // running statistics
}

// NewNet names body's modules from prefix and declares its state for
// inputs of shape in.
func NewNet(name, prefix string, body Layer, in []int) (*Net, error) {
	body.SetName(prefix)
	out, params, stats, err := body.Declare(in)
	if err != nil {
		return nil, fmt.Errorf("engine: %s: %w", name, err)
	}
	return &Net{Name: name, Body: body, In: slices.Clone(in), Out: out, Params: params, Stats: stats}, nil
}

// Init returns the network's initial parameters and statistics.
func (n *Net) Init(rng *rand.Rand) (params, stats map[string][]float32) {
	params, stats = map[string][]float32{}, map[string][]float32{}
	n.Body.Init(rng, params, stats)
	return params, stats
}

// BatchNorms lists the modules that count batches ("main.1", ...), whose
// num_batches_tracked a checkpoint records.
func (n *Net) BatchNorms() []string {
	var out []string
	walk(n.Body, func(l Layer) {
		if t, ok := l.(BatchTracker); ok && t.TracksBatches() {
			out = append(out, l.Name())
		}
	})
	return out
}

// FLOPs is the multiply-add work (x2) of one forward pass per sample, of
// the layers that say (the convolutions and linear layers).
func (n *Net) FLOPs() float64 {
	var f float64
	walk(n.Body, func(l Layer) {
		if c, ok := l.(interface{ FLOPs() float64 }); ok {
			f += c.FLOPs()
		}
	})
	return f
}

// Bind allocates the network's activations for a batch.
func (n *Net) Bind(d *Device, batch int, keep func(*Tensor)) (Bound, error) {
	return n.BindInto(d, batch, nil, keep)
}

// BindInto is Bind with out ([batch, Out...]) as the network's output
// tensor; nil allocates one. The last layer must be able to write into a
// given tensor (Linear can).
func (n *Net) BindInto(d *Device, batch int, out *Tensor, keep func(*Tensor)) (Bound, error) {
	return n.bindPooled(d, batch, out, nil, keep)
}

// bindPooled is BindInto with the layers' output gradients taken from
// grads (see gradPool); nil gives each its own.
func (n *Net) bindPooled(d *Device, batch int, out *Tensor, grads *gradPool, keep func(*Tensor)) (Bound, error) {
	var b Bound
	var err error
	if out == nil {
		b, err = n.Body.Bind(d, batch, Port{grads: grads}, keep)
	} else if in, ok := n.Body.(intoBinder); ok {
		b, err = in.bindInto(d, batch, Port{grads: grads}, out, keep)
	} else {
		err = fmt.Errorf("%s cannot write its output into a given tensor", n.Body.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %s activations: %w", n.Name, err)
	}
	return b, nil
}

// normalFill fills v with N(mean, std) draws from rng.
func normalFill(v []float32, rng *rand.Rand, mean, std float64) {
	for i := range v {
		v[i] = float32(mean + std*rng.NormFloat64())
	}
}

// alloc is NewTensor, handing the tensor to keep.
func alloc(d *Device, keep func(*Tensor), shape ...int) (*Tensor, error) {
	t, err := d.NewTensor(shape...)
	if err == nil {
		keep(t)
	}
	return t, err
}
