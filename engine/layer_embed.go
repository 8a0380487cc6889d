package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"vkgan/shaders"
)

// ClassEmbed is a conditional generator's input layer: it appends to each
// noise vector z the learned embedding of the sample's class, E[y] (an
// nn.Embedding(classes, dim) named NAME.weight, [classes, dim]), so that
// G(z, y) = G'(concat(z, E[y])). The classes come one-hot in Pass.Labels;
// E[y] is their product with E, so soft labels mix embeddings.
type ClassEmbed struct {
	name         string
	Classes, Dim int
	nz           int
	spatial      bool // input [nz,1,1] (the DCGAN's z), not [nz]
}

// ClassEmbedding is the layer concat(z, E[y]): input [nz,1,1] (or [nz]),
// output [nz+dim,1,1] (or [nz+dim]). E is initialised N(0, 1) as
// nn.Embedding's is, the scale of z itself.
func ClassEmbedding(classes, dim int) Layer { return &ClassEmbed{Classes: classes, Dim: dim} }

func (l *ClassEmbed) Name() string        { return l.name }
func (l *ClassEmbed) SetName(name string) { l.name = name }

func (l *ClassEmbed) weight() string { return joinName(l.name, "weight") }

func (l *ClassEmbed) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if l.Classes < 1 || l.Dim < 1 {
		return nil, nil, nil, fmt.Errorf("%s: class embedding of %d classes in %d dimensions", l.name, l.Classes, l.Dim)
	}
	switch {
	case len(in) == 1 && in[0] >= 1:
		l.spatial = false
	case len(in) == 3 && in[0] >= 1 && in[1] == 1 && in[2] == 1:
		l.spatial = true
	default:
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [nz] or [nz 1 1]", l.name, in)
	}
	l.nz = in[0]
	out := slices.Clone(in)
	out[0] += l.Dim
	return out, []ParamSpec{{l.weight(), []int{l.Classes, l.Dim}}}, nil, nil
}

func (l *ClassEmbed) Init(rng *rand.Rand, params, _ map[string][]float32) {
	w := make([]float32, l.Classes*l.Dim)
	normalFill(w, rng, 0, 1)
	params[l.weight()] = w
}

func (l *ClassEmbed) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	b := &boundEmbed{l: l, w: l.weight(), batch: batch}
	shape := []int{batch, l.nz + l.Dim}
	if l.spatial {
		shape = append(shape, 1, 1)
	}
	var err error
	if b.out.X, err = alloc(d, keep, shape...); err != nil {
		return nil, err
	}
	if b.out.DX, err = allocGrad(d, prev, keep, shape...); err != nil {
		return nil, err
	}
	if b.e, err = alloc(d, keep, batch, l.Dim); err != nil {
		return nil, err
	}
	return b, nil
}

type boundEmbed struct {
	l     *ClassEmbed
	w     string
	batch int
	out   Port
	e     *Tensor // [batch, dim]: E[y], then (backward) its gradient
}

func (b *boundEmbed) Out() Port { return b.out }

func (b *boundEmbed) op() string { return "class embedding " + b.l.name }

// rows views t ([batch, w, ...]) as a [batch, w] matrix, failing the
// recording when it does not hold batch*w values.
func (b *boundEmbed) rows(r *Recorder, t *Tensor, w int, what string) *Tensor {
	if t == nil || t.buf == nil || t.n != b.batch*w {
		r.fail(fmt.Errorf("engine: %s: %s %s, want %d values per sample for a batch of %d", b.op(), what, shapeStr(t), w, b.batch))
		return nil
	}
	return t.flat2(b.batch)
}

func (b *boundEmbed) Forward(r *Recorder, p *Pass, x *Tensor) {
	l := b.l
	y := passLabels(r, b.op(), p, b.batch, l.Classes)
	z := b.rows(r, x, l.nz, "input")
	if y == nil || z == nil {
		return
	}
	out := b.out.X.flat2(b.batch)
	r.Gemm(b.e, y, p.Params.T(b.w), false, false, 1, 0, nil)
	r.copyCols(out, z, b.batch, l.nz, 0, 0)
	r.copyCols(out, b.e, b.batch, l.Dim, 0, l.nz)
}

func (b *boundEmbed) Backward(r *Recorder, p *Pass, _, dx *Tensor) {
	l := b.l
	dy := b.out.DX.flat2(b.batch)
	if dx != nil {
		if dz := b.rows(r, dx, l.nz, "input gradient"); dz != nil {
			r.copyCols(dz, dy, b.batch, l.nz, 0, 0)
		}
	}
	if p.Grads == nil {
		return
	}
	y := passLabels(r, b.op(), p, b.batch, l.Classes)
	if y == nil {
		return
	}
	// dE = Y^T dy[:, nz:]: each row's gradient goes to its class's row.
	r.copyCols(b.e, dy, b.batch, l.Dim, l.nz, 0)
	beta := float32(0)
	if p.Accumulate {
		beta = 1
	}
	r.Gemm(p.Grads.T(b.w), y, b.e, true, false, 1, beta, nil)
}

// copyCols records dst[i, d0:d0+w] = src[i, s0:s0+w] for the rows i of
// two row-major matrices ([rows, ...] 2D tensors): a concatenation or a
// split along the last axis.
func (r *Recorder) copyCols(dst, src *Tensor, rows, w, s0, d0 int) error {
	if dst == nil || src == nil || len(dst.shape) != 2 || len(src.shape) != 2 {
		return r.fail(fmt.Errorf("engine: copy columns: want 2D tensors, got dst %s, src %s", shapeStr(dst), shapeStr(src)))
	}
	lds, ldd := src.shape[1], dst.shape[1]
	if rows < 1 || w < 1 || s0 < 0 || d0 < 0 || src.shape[0] < rows || dst.shape[0] < rows || s0+w > lds || d0+w > ldd {
		return r.fail(fmt.Errorf("engine: copy columns: %d rows of %d columns from column %d of %v to column %d of %v", rows, w, s0, src.shape, d0, dst.shape))
	}
	if dst.shares(src) {
		return r.fail(fmt.Errorf("engine: copy columns: dst must not alias src"))
	}
	g := r.gridGroups(w, 64)
	g[1] = uint32(min(rows, int(r.d.info.Limits.MaxWorkGroupCount[1]), 4096))
	push := shaders.CopyColsPush{Rows: uint32(rows), W: uint32(w), Lds: uint32(lds), S0: uint32(s0), Ldd: uint32(ldd), D0: uint32(d0)}
	return dispatch(r, shaders.CopyCols, nil, g, push, dst, src)
}

func (e *ClassEmbed) classCount() int { return e.Classes }
