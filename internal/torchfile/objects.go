package torchfile

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The Python names a state_dict pickle may use. torch.load runs them; we
// map each to a Go value and refuse every other name, so a file cannot make
// this package do anything but build tensors. Reference: torch/_utils.py
// and torch/serialization.py.
const (
	globalOrderedDict = "collections.OrderedDict"
	globalTensorV1    = "torch._utils._rebuild_tensor"
	globalTensorV2    = "torch._utils._rebuild_tensor_v2"
	globalParameter   = "torch._utils._rebuild_parameter"
	globalParamState  = "torch._utils._rebuild_parameter_with_state"
)

var allowedCallables = []string{globalOrderedDict, globalTensorV1, globalTensorV2, globalParameter, globalParamState}

// storageTypes are the torch.*Storage classes that persistent ids name, with
// their dtype and element size. Those outside the five supported dtypes are
// listed too, so that a tensor of them is refused by name rather than as an
// unknown global.
var storageTypes = map[string]storageType{
	"FloatStorage":         {"FloatStorage", Float32, 4},
	"DoubleStorage":        {"DoubleStorage", Float64, 8},
	"HalfStorage":          {"HalfStorage", Float16, 2},
	"BFloat16Storage":      {"BFloat16Storage", BFloat16, 2},
	"LongStorage":          {"LongStorage", Int64, 8},
	"IntStorage":           {"IntStorage", "int32", 4},
	"ShortStorage":         {"ShortStorage", "int16", 2},
	"CharStorage":          {"CharStorage", "int8", 1},
	"ByteStorage":          {"ByteStorage", "uint8", 1},
	"BoolStorage":          {"BoolStorage", "bool", 1},
	"ComplexFloatStorage":  {"ComplexFloatStorage", "complex64", 8},
	"ComplexDoubleStorage": {"ComplexDoubleStorage", "complex128", 16},
}

// callable is an allowed Python function or class, by its dotted name.
type callable string

func (c callable) pyType() string { return string(c) }

// storageType is a torch.*Storage class.
type storageType struct {
	name  string // without "torch."
	dtype DType
	size  int64 // bytes per element
}

func (s storageType) pyType() string { return "torch." + s.name }

// storage is one persistent storage: a flat array of numel elements kept
// outside the pickle (a zip record, or a block after the legacy pickles).
type storage struct {
	key   string
	typ   storageType
	numel int64
	users []int // indexes of the tensors that view it, filled by plan
}

func (*storage) pyType() string { return "storage" }

// tensorRef is a tensor as _rebuild_tensor_v2 describes it: a strided view
// of a storage, in elements.
type tensorRef struct {
	st     *storage
	offset int64
	size   []int64
	stride []int64
}

func (*tensorRef) pyType() string { return "tensor" }

// loader is the objects of a checkpoint's main pickle. It records every
// storage in the order the pickle first names it.
type loader struct {
	file     string
	storages map[string]*storage
	order    []*storage
}

var _ objects = (*loader)(nil)

func newLoader(file string) *loader {
	return &loader{file: file, storages: make(map[string]*storage)}
}

func (l *loader) unsupported(format string, args ...any) error {
	return &UnsupportedError{File: l.file, Problem: fmt.Sprintf(format, args...)}
}

func (l *loader) global(module, name string) (any, error) {
	full := module + "." + name
	if slices.Contains(allowedCallables, full) {
		return callable(full), nil
	}
	if t, ok := storageTypes[name]; ok && module == "torch" {
		return t, nil
	}
	return nil, l.unsupported("Python global %s is not allowed in a state_dict; only %s and torch.*Storage are", full, strings.Join(allowedCallables, ", "))
}

func (l *loader) call(fn any, args pyTuple) (any, error) {
	c, ok := fn.(callable)
	if !ok {
		return nil, l.unsupported("calling %s is not allowed", aType(fn))
	}
	switch c {
	case globalOrderedDict:
		return l.newObj(fn, args)
	case globalTensorV1, globalTensorV2:
		// _rebuild_tensor(storage, storage_offset, size, stride) and
		// _rebuild_tensor_v2(..., requires_grad, backward_hooks[, metadata]):
		// autograd state and hooks mean nothing to a reader of weights.
		switch {
		case c == globalTensorV1 && len(args) != 4:
			return nil, bad("%s with %d arguments, not 4", c, len(args))
		case c == globalTensorV2 && len(args) != 6 && len(args) != 7:
			return nil, bad("%s with %d arguments, not 6 or 7", c, len(args))
		}
		st, ok := args[0].(*storage)
		if !ok {
			return nil, bad("%s on %s, not a storage", c, aType(args[0]))
		}
		offset, ok := args[1].(int64)
		if !ok {
			return nil, bad("%s with a storage offset of type %s", c, typeName(args[1]))
		}
		size, err := ints(args[2], c, "size")
		if err != nil {
			return nil, err
		}
		stride, err := ints(args[3], c, "stride")
		if err != nil {
			return nil, err
		}
		return &tensorRef{st: st, offset: offset, size: size, stride: stride}, nil
	case globalParameter, globalParamState:
		// _rebuild_parameter(data, requires_grad, backward_hooks) and
		// _rebuild_parameter_with_state(..., state): an nn.Parameter is its
		// data to us.
		want := 3
		if c == globalParamState {
			want = 4
		}
		if len(args) != want {
			return nil, bad("%s with %d arguments, not %d", c, len(args), want)
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, bad("%s on %s, not a tensor", c, aType(args[0]))
		}
		return t, nil
	}
	return nil, l.unsupported("calling %s is not allowed", c)
}

// ints converts a tuple of ints, a tensor's size or stride.
func ints(v any, fn callable, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, bad("%s with a %s of type %s, not a tuple", fn, what, typeName(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, bad("%s with a %s holding %s", fn, what, aType(x))
		}
		out[i] = n
	}
	return out, nil
}

func (l *loader) newObj(cls any, args pyTuple) (any, error) {
	if c, ok := cls.(callable); !ok || c != globalOrderedDict {
		return nil, l.unsupported("creating %s is not allowed", aType(cls))
	}
	if len(args) != 0 {
		return nil, bad("%s with %d arguments; torch.save writes none", globalOrderedDict, len(args))
	}
	return &pyDict{ordered: true}, nil
}

// build accepts only the state of an OrderedDict: a state_dict carries its
// modules' versions as a _metadata attribute, which loading weights does
// not need.
func (l *loader) build(obj, state any) error {
	if d, ok := obj.(*pyDict); !ok || !d.ordered {
		return l.unsupported("setting the state of %s is not allowed", aType(obj))
	}
	if _, ok := state.(*pyDict); !ok {
		return bad("OrderedDict state is %s, not a dict", aType(state))
	}
	return nil
}

// persistent resolves a storage's persistent id: ('storage', storage type,
// key, location, numel), plus view metadata in the legacy format, which
// torch has written as None since 0.4.
func (l *loader) persistent(pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) == 0 {
		return nil, bad("persistent id is %s, not a tuple", aType(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, l.unsupported("persistent id of kind %v; only storages are read", t[0])
	}
	if len(t) != 5 && len(t) != 6 {
		return nil, bad("storage persistent id has %d fields, not 5 or 6", len(t))
	}
	typ, ok1 := t[1].(storageType)
	key, ok2 := t[2].(string)
	_, ok3 := t[3].(string)
	numel, ok4 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, bad("storage persistent id (%s, %s, %s, %s) is not (storage type, key, location, numel)", typeName(t[1]), typeName(t[2]), typeName(t[3]), typeName(t[4]))
	}
	if len(t) == 6 {
		if _, ok := t[5].(pyNone); !ok {
			return nil, l.unsupported("storage %q is a view of another storage (PyTorch before 0.4)", key)
		}
	}
	if numel < 0 || numel > math.MaxInt/typ.size { // its bytes must fit a slice
		return nil, bad("storage %q has %d elements", key, numel)
	}
	if s, ok := l.storages[key]; ok {
		if s.typ != typ || s.numel != numel {
			return nil, bad("storage %q is named as %d of torch.%s and as %d of torch.%s", key, s.numel, s.typ.name, numel, typ.name)
		}
		return s, nil
	}
	s := &storage{key: key, typ: typ, numel: numel}
	l.storages[key] = s
	l.order = append(l.order, s)
	return s, nil
}

// plain is the objects of the legacy format's header pickles, which hold
// only numbers, strings and dicts.
type plain struct{ file string }

var _ objects = plain{}

func (p plain) refuse(what string) error {
	return &FormatError{File: p.file, Problem: what + " in a header pickle"}
}

func (p plain) global(module, name string) (any, error) {
	return nil, p.refuse("Python global " + module + "." + name)
}
func (p plain) call(any, pyTuple) (any, error)   { return nil, p.refuse("a call") }
func (p plain) newObj(any, pyTuple) (any, error) { return nil, p.refuse("an object") }
func (p plain) build(any, any) error             { return p.refuse("an object's state") }
func (p plain) persistent(any) (any, error)      { return nil, p.refuse("a persistent id") }
