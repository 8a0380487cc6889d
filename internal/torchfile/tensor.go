package torchfile

import (
	"encoding/binary"
	"fmt"
	"math"
)

// plan checks every tensor against its storage before any storage is read,
// so that a bad shape costs an error rather than an allocation, and records
// which tensors view each storage.
func (l *loader) plan(names []string, tensors []*tensorRef) error {
	var out, viewed int64 // bytes, saturating
	for i, t := range tensors {
		n, err := l.check(names[i], t)
		if err != nil {
			return err
		}
		width := int64(4)
		if t.st.typ.dtype == Int64 {
			width = 8
		}
		out = satAdd(out, satMul(n, width))
		if len(t.st.users) == 0 {
			viewed = satAdd(viewed, t.st.numel*t.st.typ.size)
		}
		t.st.users = append(t.st.users, i)
	}
	if limit := satAdd(satMul(viewed, maxExpansion), 1<<20); out > limit {
		return l.unsupported("the tensors hold %d bytes as float32 and int64, over %d times the %d bytes of storage they view", out, maxExpansion, viewed)
	}
	return nil
}

// check returns t's element count after checking its dtype and that every
// element it views lies inside its storage.
func (l *loader) check(name string, t *tensorRef) (int64, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{File: l.file, Tensor: name, Problem: fmt.Sprintf(format, args...)}
	}
	st := t.st
	switch st.typ.dtype {
	case Float32, Float64, Float16, BFloat16, Int64:
	default:
		return 0, &UnsupportedError{File: l.file, Tensor: name, Problem: fmt.Sprintf("dtype %s (torch.%s); only float32, float64, float16, bfloat16 and int64 are read", st.typ.dtype, st.typ.name)}
	}
	if len(t.size) != len(t.stride) {
		return 0, bad("size %v and stride %v differ in length", t.size, t.stride)
	}
	if t.offset < 0 {
		return 0, bad("negative storage offset %d", t.offset)
	}
	n := int64(1)
	for i, d := range t.size {
		if d < 0 || t.stride[i] < 0 {
			return 0, bad("negative size or stride in size %v, stride %v", t.size, t.stride)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, bad("size %v has more elements than an int64 counts", t.size)
		}
		n *= d
	}
	if n == 0 {
		return 0, nil
	}
	// The last element viewed is at offset + Σ (size-1)*stride.
	last := t.offset
	for i, d := range t.size {
		step := satMul(d-1, t.stride[i])
		last = satAdd(last, step)
	}
	if last >= st.numel {
		return 0, bad("size %v, stride %v at offset %d reaches element %d of storage %q, which holds %d", t.size, t.stride, t.offset, last, st.key, st.numel)
	}
	if n > st.numel {
		return 0, &UnsupportedError{File: l.file, Tensor: name, Problem: fmt.Sprintf("size %v has %d elements over a storage of %d: a view that repeats elements (expand?); save it with .contiguous()", t.size, n, st.numel)}
	}
	return n, nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satMul multiplies non-negative a and b, saturating at MaxInt64.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// materialise copies t out of raw, its storage's little-endian bytes, into
// a contiguous row-major Tensor. plan has checked t against the storage.
func materialise(t *tensorRef, raw []byte) Tensor {
	shape := make([]int, len(t.size))
	n := 1
	for i, d := range t.size {
		shape[i] = int(d)
		n *= int(d)
	}
	out := Tensor{DType: t.st.typ.dtype, Shape: shape}
	esize := int(t.st.typ.size)
	if out.DType == Int64 {
		out.I64 = make([]int64, n)
		runs(t, n, func(dst int, src int64, m int) {
			decodeI64(out.I64[dst:dst+m], raw[int(src)*esize:])
		})
		return out
	}
	out.F32 = make([]float32, n)
	runs(t, n, func(dst int, src int64, m int) {
		decodeF32(out.F32[dst:dst+m], raw[int(src)*esize:], out.DType)
	})
	return out
}

// runs calls fn for each stretch of t's n elements that lies contiguous
// in the storage, in row-major order: m elements from storage index src
// go to dst onward. A contiguous tensor is one run; a transposed one is a
// run per element.
func runs(t *tensorRef, n int, fn func(dst int, src int64, m int)) {
	if n == 0 {
		return
	}
	// Merge the trailing dimensions that are laid out row-major into one
	// run. A size-1 dimension's stride never matters.
	outer, m := len(t.size), int64(1)
	for outer > 0 {
		d := outer - 1
		if t.size[d] != 1 && t.stride[d] != m {
			break
		}
		m *= t.size[d]
		outer--
	}
	idx := make([]int64, outer)
	src := t.offset
	for dst := 0; dst < n; dst += int(m) {
		fn(dst, src, int(m))
		// Advance the last outer dimension, carrying into earlier ones. A
		// carry undoes its own steps; int64 arithmetic wraps, so even a
		// huge stride on a size-1 dimension comes back exactly.
		for d := outer - 1; d >= 0; d-- {
			idx[d]++
			src += t.stride[d]
			if idx[d] < t.size[d] {
				break
			}
			src -= t.stride[d] * t.size[d]
			idx[d] = 0
		}
	}
}

// decodeF32 converts len(dst) consecutive little-endian elements of dtype
// at the start of raw.
func decodeF32(dst []float32, raw []byte, dtype DType) {
	switch dtype {
	case Float32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case Float64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case Float16:
		for i := range dst {
			dst[i] = halfToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BFloat16:
		// bfloat16 is the top half of a float32.
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	}
}

func decodeI64(dst []int64, raw []byte) {
	for i := range dst {
		dst[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // Inf and NaN keep their payload in the top fraction bits
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case 0: // zero and subnormals: frac × 2^-24, exact in float32
		f := float32(frac) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	}
	// Rebias the exponent from 15 to 127.
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
