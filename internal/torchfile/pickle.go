package torchfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"
)

// The unpickler runs the pickle virtual machine over the opcodes torch.save
// emits (protocol 2, its default) plus the few that protocols 3 to 5 add
// for the same values, so a state_dict re-saved with pickle_protocol=4 still
// reads. It never runs Python code: every opcode that names code (GLOBAL,
// STACK_GLOBAL, REDUCE, NEWOBJ, BUILD, BINPERSID) goes to an objects value,
// which maps the few names a state_dict needs to Go values and refuses the
// rest. Reference: CPython's Lib/pickle.py and Lib/pickletools.py.
//
// Python values become:
//
//	None          pyNone{}
//	bool          bool
//	int           int64, or *big.Int past 64 bits (the legacy magic number)
//	float         float64
//	str           string
//	bytes         []byte
//	tuple         pyTuple
//	list          *pyList (shared through the memo, so a pointer)
//	dict          *pyDict
type (
	pyNone  struct{}
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct {
		ordered bool // a collections.OrderedDict
		keys    []any
		vals    []any
	}
)

// objects gives meaning to the opcodes that name Python code. Errors it
// returns get the pickle's name and byte offset added.
type objects interface {
	global(module, name string) (any, error)
	call(fn any, args pyTuple) (any, error)    // REDUCE: fn(*args)
	newObj(cls any, args pyTuple) (any, error) // NEWOBJ: cls.__new__(cls, *args)
	build(obj, state any) error                // BUILD: obj.__setstate__(state)
	persistent(pid any) (any, error)           // BINPERSID
}

// Pickle opcodes. Reference: CPython's Lib/pickle.py.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opBinUnicode     = 'X'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opProto          = 0x80
	opNewObj         = 0x81
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	maxProtocol      = 5
	maxGlobalNameLen = 1 << 10 // a GLOBAL line; real ones are under 50 bytes
)

type unpickler struct {
	obj   objects
	file  string // for errors
	what  string // the pickle's name in errors: "archive/data.pkl", "the file"
	base  int64  // offset of the pickle within what, for errors
	r     *bufio.Reader
	pos   int64 // bytes consumed
	size  int64 // bytes available from the start
	op    int64 // offset of the opcode being run, for errors
	stack []any
	marks []int // stack heights at each MARK
	memo  map[int64]any
}

// unpickle reads one pickle from r, which has size bytes available, and
// returns its value and the number of bytes it took: the legacy format
// stores several pickles back to back. Errors name the pickle as what, at
// byte offsets counted from base.
func unpickle(r io.Reader, size int64, obj objects, file, what string, base int64) (any, int64, error) {
	u := &unpickler{obj: obj, file: file, what: what, base: base, r: bufio.NewReader(r), size: size, memo: make(map[int64]any)}
	v, err := u.run()
	if err != nil {
		return nil, 0, u.located(err)
	}
	return v, u.pos, nil
}

// errUnpickle marks an error found by the pickle machine itself.
type errUnpickle string

func (e errUnpickle) Error() string { return string(e) }

func bad(format string, args ...any) error { return errUnpickle(fmt.Sprintf(format, args...)) }

// located adds the pickle's name and the opcode's offset to err.
func (u *unpickler) located(err error) error {
	at := fmt.Sprintf("%s at byte %d: ", u.what, u.base+u.op)
	var fe *FormatError
	var ue *UnsupportedError
	switch {
	case errors.As(err, &fe):
		c := *fe
		c.Problem = at + c.Problem
		return &c
	case errors.As(err, &ue):
		c := *ue
		c.Problem = at + c.Problem
		return &c
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FormatError{File: u.file, Problem: at + "the data ends inside the pickle: truncated file?"}
	}
	var p errUnpickle
	if errors.As(err, &p) {
		return &FormatError{File: u.file, Problem: at + string(p)}
	}
	return fmt.Errorf("torchfile: read %s: %s%w", u.file, at, err)
}

func (u *unpickler) run() (any, error) {
	for {
		u.op = u.pos
		op, err := u.byte()
		if err != nil {
			return nil, err
		}
		if op == opStop {
			return u.pop()
		}
		if err := u.step(op); err != nil {
			return nil, err
		}
	}
}

func (u *unpickler) step(op byte) error {
	switch op {
	case opProto:
		v, err := u.byte()
		if err != nil {
			return err
		}
		if v > maxProtocol {
			return &UnsupportedError{File: u.file, Problem: fmt.Sprintf("pickle protocol %d (newer than %d)", v, maxProtocol)}
		}
	case opFrame:
		// Frames only group opcodes for buffered reading; the stream reads
		// the same without them. The length is checked, not trusted.
		n, err := u.uint(8)
		if err != nil {
			return err
		}
		if n > uint64(u.size-u.pos) {
			return bad("frame of %d bytes runs past the end (%d left)", n, u.size-u.pos)
		}
	case opMark:
		u.marks = append(u.marks, len(u.stack))
	case opPop:
		_, err := u.pop()
		return err
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		u.push(v)

	case opNone:
		u.push(pyNone{})
	case opNewTrue:
		u.push(true)
	case opNewFalse:
		u.push(false)
	case opBinInt:
		v, err := u.uint(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(v)))
	case opBinInt1:
		v, err := u.uint(1)
		if err != nil {
			return err
		}
		u.push(int64(v))
	case opBinInt2:
		v, err := u.uint(2)
		if err != nil {
			return err
		}
		u.push(int64(v))
	case opLong1, opLong4:
		w := 1
		if op == opLong4 {
			w = 4
		}
		n, err := u.uint(w)
		if err != nil {
			return err
		}
		if op == opLong4 && int32(n) < 0 {
			return bad("LONG4 with negative length %d", int32(n))
		}
		b, err := u.bytes(n)
		if err != nil {
			return err
		}
		u.push(decodeLong(b))
	case opBinFloat:
		b, err := u.bytes(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case opShortBinUni, opBinUnicode, opBinUnicode8, opShortBinBytes, opBinBytes, opBinBytes8:
		n, err := u.uint(lengthWidth(op))
		if err != nil {
			return err
		}
		b, err := u.bytes(n)
		if err != nil {
			return err
		}
		switch op {
		case opShortBinBytes, opBinBytes, opBinBytes8:
			u.push(b)
		default:
			if !utf8.Valid(b) {
				return bad("string is not valid UTF-8")
			}
			u.push(string(b))
		}

	case opEmptyTuple:
		u.push(pyTuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(u.stack)-u.floor() < n {
			return bad("TUPLE%d with %d values on the stack", n, len(u.stack)-u.floor())
		}
		t := pyTuple(append([]any(nil), u.stack[len(u.stack)-n:]...))
		u.stack = u.stack[:len(u.stack)-n]
		u.push(t)
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(pyTuple(items))
	case opEmptyList:
		u.push(&pyList{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(&pyList{items: items})
	case opEmptyDict:
		u.push(&pyDict{})
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := &pyDict{}
		if err := d.setItems(items); err != nil {
			return err
		}
		u.push(d)
	case opAppend, opAppends:
		var items []any
		if op == opAppend {
			v, err := u.pop()
			if err != nil {
				return err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		l, ok := v.(*pyList)
		if !ok {
			return bad("APPEND to %s, not a list", aType(v))
		}
		l.items = append(l.items, items...)
	case opSetItem, opSetItems:
		var items []any
		if op == opSetItem {
			if len(u.stack)-u.floor() < 2 {
				return bad("SETITEM with %d values on the stack", len(u.stack)-u.floor())
			}
			items = append([]any(nil), u.stack[len(u.stack)-2:]...)
			u.stack = u.stack[:len(u.stack)-2]
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		d, ok := v.(*pyDict)
		if !ok {
			return bad("SETITEM on %s, not a dict", aType(v))
		}
		return d.setItems(items)

	case opBinPut, opLongBinPut, opMemoize:
		v, err := u.top()
		if err != nil {
			return err
		}
		i := int64(len(u.memo))
		if op != opMemoize {
			w := 1
			if op == opLongBinPut {
				w = 4
			}
			n, err := u.uint(w)
			if err != nil {
				return err
			}
			i = int64(n)
		}
		u.memo[i] = v
	case opBinGet, opLongBinGet:
		w := 1
		if op == opLongBinGet {
			w = 4
		}
		i, err := u.uint(w)
		if err != nil {
			return err
		}
		v, ok := u.memo[int64(i)]
		if !ok {
			return bad("memo entry %d read before it was stored", i)
		}
		u.push(v)

	case opGlobal:
		module, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		g, err := u.obj.global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case opStackGlobal:
		nv, err := u.pop()
		if err != nil {
			return err
		}
		mv, err := u.pop()
		if err != nil {
			return err
		}
		module, ok1 := mv.(string)
		name, ok2 := nv.(string)
		if !ok1 || !ok2 {
			return bad("STACK_GLOBAL with %s and %s, not two strings", aType(mv), aType(nv))
		}
		g, err := u.obj.global(module, name)
		if err != nil {
			return err
		}
		u.push(g)
	case opReduce, opNewObj:
		av, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		args, ok := av.(pyTuple)
		if !ok {
			return bad("arguments are %s, not a tuple", aType(av))
		}
		var v any
		if op == opReduce {
			v, err = u.obj.call(fn, args)
		} else {
			v, err = u.obj.newObj(fn, args)
		}
		if err != nil {
			return err
		}
		u.push(v)
	case opBuild:
		state, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.obj.build(v, state)
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.obj.persistent(pid)
		if err != nil {
			return err
		}
		u.push(v)
	default:
		return bad("opcode %#02x is not one torch.save writes for a state_dict", op)
	}
	return nil
}

// lengthWidth is the size of a string or bytes opcode's length operand.
func lengthWidth(op byte) int {
	switch op {
	case opShortBinUni, opShortBinBytes:
		return 1
	case opBinUnicode, opBinBytes:
		return 4
	}
	return 8
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

// floor is the stack height below which the innermost MARK hides values.
func (u *unpickler) floor() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.floor() {
		return nil, bad("stack is empty")
	}
	return u.stack[len(u.stack)-1], nil
}

func (u *unpickler) pop() (any, error) {
	v, err := u.top()
	if err == nil {
		u.stack = u.stack[:len(u.stack)-1]
	}
	return v, err
}

// popMark removes and returns the values above the innermost MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, bad("no MARK to pop to")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (d *pyDict) setItems(items []any) error {
	if len(items)%2 != 0 {
		return bad("SETITEMS with an odd number (%d) of keys and values", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		d.keys = append(d.keys, items[i])
		d.vals = append(d.vals, items[i+1])
	}
	return nil
}

func (u *unpickler) byte() (byte, error) {
	if u.pos >= u.size {
		return 0, io.ErrUnexpectedEOF
	}
	b, err := u.r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		u.pos++
	}
	return b, err
}

// bytes reads n bytes, checking n against what is left before it
// allocates: a damaged length costs an error, not memory.
func (u *unpickler) bytes(n uint64) ([]byte, error) {
	if n > uint64(u.size-u.pos) {
		return nil, bad("a %d-byte value runs past the end of the data (%d bytes left): truncated file?", n, u.size-u.pos)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(u.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	u.pos += int64(n)
	return b, nil
}

// uint reads a w-byte little-endian unsigned integer.
func (u *unpickler) uint(w int) (uint64, error) {
	b, err := u.bytes(uint64(w))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := w - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// line reads a GLOBAL operand: text up to a newline.
func (u *unpickler) line() (string, error) {
	var b []byte
	for {
		c, err := u.byte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			break
		}
		if len(b) == maxGlobalNameLen {
			return "", bad("GLOBAL name longer than %d bytes", maxGlobalNameLen)
		}
		b = append(b, c)
	}
	if !utf8.Valid(b) {
		return "", bad("GLOBAL name is not valid UTF-8")
	}
	return string(b), nil
}

// decodeLong decodes LONG1 and LONG4 operands: little-endian two's
// complement, where no bytes mean 0.
func decodeLong(b []byte) any {
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if n := uint(len(b)) * 8; n > 0 && n < 64 && b[len(b)-1]&0x80 != 0 {
			v |= ^uint64(0) << n // sign-extend
		}
		return int64(v)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return v
}

// aType names v's Python type with an article, for errors: "an int".
func aType(v any) string {
	n := typeName(v)
	switch {
	case n == "None":
		return n
	case strings.ContainsRune("aeiouAEIOU", rune(n[0])):
		return "an " + n
	}
	return "a " + n
}

// typeName names v's Python type, for errors.
func typeName(v any) string {
	switch v := v.(type) {
	case pyNone:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		if v.ordered {
			return "OrderedDict"
		}
		return "dict"
	case interface{ pyType() string }:
		return v.pyType()
	}
	return fmt.Sprintf("%T", v)
}
