package engine

import (
	"fmt"
)

// ParamSpec names one tensor of a network's state.
type ParamSpec struct {
	Name  string
	Shape []int
}

// ParamSet keeps a network's tensors in one flat buffer, each at a
// ViewAlign-aligned offset, so one dispatch (Adam, an EMA, a zero fill)
// covers all of them and a checkpoint is one download.
type ParamSet struct {
	Specs   []ParamSpec
	Offsets []int
	Flat    *Tensor
	views   []*Tensor
	index   map[string]int
}

// layoutParams computes aligned offsets and the flat length.
func layoutParams(specs []ParamSpec) ([]int, int, error) {
	offs := make([]int, len(specs))
	total := 0
	for i, s := range specs {
		n, err := numel(s.Shape)
		if err != nil {
			return nil, 0, fmt.Errorf("engine: parameter %s: %w", s.Name, err)
		}
		offs[i] = total
		total += (n + ViewAlign - 1) / ViewAlign * ViewAlign
	}
	return offs, total, nil
}

// NewParamSet allocates a zero-filled flat buffer for specs.
func (d *Device) NewParamSet(specs []ParamSpec) (*ParamSet, error) {
	offs, total, err := layoutParams(specs)
	if err != nil {
		return nil, err
	}
	flat, err := d.NewTensor(total)
	if err != nil {
		return nil, err
	}
	ps := &ParamSet{Specs: specs, Offsets: offs, Flat: flat, index: map[string]int{}}
	for i, s := range specs {
		v, err := flat.View(offs[i], s.Shape...)
		if err != nil {
			flat.Release()
			return nil, err
		}
		ps.views = append(ps.views, v)
		ps.index[s.Name] = i
	}
	return ps, nil
}

// Like allocates another zero-filled set with the same layout (gradients,
// optimizer moments, an average of the weights).
func (ps *ParamSet) Like() (*ParamSet, error) { return ps.Flat.d.NewParamSet(ps.Specs) }

// T returns the tensor named name; it panics on an unknown name, which
// only a bug in the network definition can cause.
func (ps *ParamSet) T(name string) *Tensor {
	i, ok := ps.index[name]
	if !ok {
		panic(fmt.Sprintf("engine: no parameter %q", name))
	}
	return ps.views[i]
}

// Has reports whether the set has a tensor named name.
func (ps *ParamSet) Has(name string) bool { _, ok := ps.index[name]; return ok }

// Get downloads every tensor, by name.
func (ps *ParamSet) Get() (map[string][]float32, error) {
	all, err := ps.Flat.Download()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]float32, len(ps.Specs))
	for i, s := range ps.Specs {
		n := ps.views[i].n
		out[s.Name] = append([]float32(nil), all[ps.Offsets[i]:ps.Offsets[i]+n]...)
	}
	return out, nil
}

// Set uploads the given tensors (every one must be present with the right
// size); padding between them stays zero.
func (ps *ParamSet) Set(vals map[string][]float32) error {
	all := make([]float32, ps.Flat.n)
	for i, s := range ps.Specs {
		v, ok := vals[s.Name]
		if !ok {
			return fmt.Errorf("engine: missing tensor %s", s.Name)
		}
		if len(v) != ps.views[i].n {
			return fmt.Errorf("engine: tensor %s has %d values, want %d (shape %v)", s.Name, len(v), ps.views[i].n, s.Shape)
		}
		copy(all[ps.Offsets[i]:], v)
	}
	return ps.Flat.Upload(all)
}

// Release frees the flat buffer.
func (ps *ParamSet) Release() {
	if ps != nil {
		ps.Flat.Release()
	}
}

// initState uploads fresh values into weight sets (a nil set is skipped),
// zeroes optimizer and gradient sets and sets step counters to 0: the
// common start of a GAN's Init.
func initState(sets []*ParamSet, vals []map[string][]float32, zero []*ParamSet, counters ...*Counter) error {
	for i, ps := range sets {
		if ps == nil {
			continue
		}
		if err := ps.Set(vals[i]); err != nil {
			return err
		}
	}
	for _, ps := range zero {
		if ps == nil {
			continue
		}
		if err := ps.Flat.Upload(make([]float32, ps.Flat.n)); err != nil {
			return err
		}
	}
	for _, c := range counters {
		if err := c.Set(0); err != nil {
			return err
		}
	}
	return nil
}
