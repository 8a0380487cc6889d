// Package kernelgen reads the interface of a GLSL compute shader (its
// storage-buffer bindings, specialization constants, workgroup size and
// push-constant block), checks it against the SPIR-V glslc made from it,
// and writes the Go descriptors and push-constant structs of package
// shaders (shaders/zkernels.go). shaders/gen.go runs it.
//
// The parser knows only the declaration forms vkgan's kernels use, and it
// is strict: a top-level declaration that mentions layout, uniform, buffer,
// in or out in any other form is an error, not something to skip, so a
// kernel cannot gain an interface the Go side does not know about. It reads
// preprocessed source (glslc -E), so macros and #ifdef variants are
// already resolved.
package kernelgen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Access says how a kernel uses a storage buffer.
type Access int

// The qualifiers on a buffer block.
const (
	ReadWrite Access = iota // no qualifier
	ReadOnly                // readonly
	WriteOnly               // writeonly
)

// String is the constant's name in package shaders.
func (a Access) String() string {
	switch a {
	case ReadOnly:
		return "ReadOnly"
	case WriteOnly:
		return "WriteOnly"
	}
	return "ReadWrite"
}

// Shader is the interface of one compute-shader build.
type Shader struct {
	Name      string    // module name: the source's base name, or base_variant
	Source    string    // the .comp file
	Bindings  []Binding // storage buffers at set 0, indexed by binding
	Spec      []Spec    // specialization constants, indexed by constant_id
	LocalSize [3]uint32 // workgroup size; 0 where a specialization constant sets it
	Push      *Block    // the push-constant block; nil when there is none
}

// Binding is one storage-buffer binding. Several blocks may share a
// binding (typed views of one buffer, as igemm's 64-bit loads). A uniform
// texel buffer (textureBuffer) is a binding of its own, read-only.
type Binding struct {
	Blocks []string // block names, in declaration order; a texel buffer's variable name
	Access Access   // ReadWrite when the views disagree
	Texel  bool     // a textureBuffer: an RGBA32F uniform texel buffer
}

// Spec is one specialization constant.
type Spec struct {
	Name string // the constant's name; local_size_x etc. for a workgroup size
	Type string // bool, int, uint or float
}

// Block is a push-constant block laid out as std430, the layout Vulkan
// GLSL gives push constants.
type Block struct {
	Name    string
	Members []Member
	Size    int // bytes: the end of the last member
}

// Member is one member of a push-constant block.
type Member struct {
	Name   string
	Type   string // a GLSL type from pushTypes
	Offset int    // bytes from the start of the block
}

// pushType is how a GLSL push-constant member type is laid out and held in
// Go: n 32-bit components of scalar kind, aligned to align bytes (std430:
// a 3-vector aligns as a 4-vector).
type pushType struct {
	scalar string // bool, int, uint or float
	n      int
	align  int
}

var pushTypes = map[string]pushType{
	"bool": {"bool", 1, 4}, "int": {"int", 1, 4}, "uint": {"uint", 1, 4}, "float": {"float", 1, 4},
	"vec2": {"float", 2, 8}, "vec3": {"float", 3, 16}, "vec4": {"float", 4, 16},
	"ivec2": {"int", 2, 8}, "ivec3": {"int", 3, 16}, "ivec4": {"int", 4, 16},
	"uvec2": {"uint", 2, 8}, "uvec3": {"uint", 3, 16}, "uvec4": {"uint", 4, 16},
}

// maxPushSize is the push-constant space every Vulkan device provides
// (maxPushConstantsSize's required minimum).
const maxPushSize = 128

// Error is an interface the generator does not accept: a declaration the
// parser does not know, or a module that disagrees with the source.
type Error struct {
	Source string // the .comp file
	Shader string // the build
	Line   int    // the source line; 0 when the error is not about one line
	Msg    string
}

func (e *Error) Error() string {
	where := e.Source
	if e.Shader != strings.TrimSuffix(e.Source, ".comp") {
		where += " (" + e.Shader + ")"
	}
	if e.Line > 0 {
		where += fmt.Sprintf(":%d", e.Line)
	}
	return "kernelgen: " + where + ": " + e.Msg
}

// Parse reads the interface of the build name of source from its
// preprocessed GLSL src.
func Parse(name, source, src string) (*Shader, error) {
	p := &parser{sh: &Shader{Name: name, Source: source}}
	toks, err := tokenize(src)
	if err != nil {
		return nil, p.errAt(err.line, "%s", err.msg)
	}
	for _, st := range statements(toks) {
		if err := p.statement(st); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.sh, nil
}

type token struct {
	text string
	line int
}

type lexError struct {
	line int
	msg  string
}

// tokenize splits GLSL into identifiers, numbers and single punctuation
// characters, dropping comments and the directives a preprocessed source
// keeps (#version, #extension, #line, #pragma).
func tokenize(src string) ([]token, *lexError) {
	var toks []token
	line := 1
	atLineStart := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			atLineStart = true
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '#':
			if !atLineStart {
				return nil, &lexError{line, "'#' inside a line"}
			}
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			dir := strings.Fields(src[i+1 : i+end])
			if len(dir) == 0 || !slices.Contains([]string{"version", "extension", "line", "pragma"}, dir[0]) {
				return nil, &lexError{line, fmt.Sprintf("directive %q in preprocessed source", strings.TrimSpace(src[i:i+end]))}
			}
			i += end
			continue
		case strings.HasPrefix(src[i:], "//"):
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			i += end
			continue
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, &lexError{line, "unterminated comment"}
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
			continue
		}
		atLineStart = false
		j := i + 1
		switch {
		case isIdentStart(c):
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
				j++
			}
		case isDigit(c):
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j]) || src[j] == '.') {
				j++
			}
		}
		toks = append(toks, token{src[i:j], line})
		i = j
	}
	return toks, nil
}

func isIdentStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }

// statements splits tokens into top-level statements: declarations ending
// in ';' and function definitions ending in their body's '}'.
func statements(toks []token) [][]token {
	var out [][]token
	start, depth := 0, 0
	for i, t := range toks {
		switch t.text {
		case "{":
			depth++
		case "}":
			depth--
			if depth == 0 && isFunction(toks[start:i+1]) {
				out = append(out, toks[start:i+1])
				start = i + 1
			}
		case ";":
			if depth == 0 {
				out = append(out, toks[start:i+1])
				start = i + 1
			}
		}
	}
	if start < len(toks) {
		out = append(out, toks[start:])
	}
	return out
}

// isFunction reports whether st's first '{' follows a ')': a function body,
// not a block or an initializer list.
func isFunction(st []token) bool {
	for i, t := range st {
		if t.text == "{" {
			return i > 0 && st[i-1].text == ")"
		}
	}
	return false
}

type parser struct {
	sh       *Shader
	bindings map[int]*Binding
	spec     map[int]Spec
	sawLocal bool
}

func (p *parser) errAt(line int, format string, a ...any) error {
	return &Error{Source: p.sh.Source, Shader: p.sh.Name, Line: line, Msg: fmt.Sprintf(format, a...)}
}

// interfaceWords are the words that make a top-level declaration part of
// a kernel's interface.
var interfaceWords = []string{"layout", "uniform", "buffer", "in", "out", "inout", "push_constant", "constant_id"}

func (p *parser) statement(st []token) error {
	line := st[0].line
	if st[len(st)-1].text != ";" && st[len(st)-1].text != "}" {
		return p.errAt(line, "declaration does not end")
	}
	if st[0].text != "layout" {
		// Not an interface declaration unless it says otherwise outside
		// parentheses before any body.
		depth := 0
		for _, t := range st {
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
			}
			if t.text == "{" {
				break
			}
			if depth == 0 && slices.Contains(interfaceWords, t.text) {
				return p.errAt(t.line, "unrecognised declaration %q (interface declarations start with layout(...))", join(st))
			}
		}
		return nil
	}
	quals, rest, err := p.layoutQualifiers(st)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 2 && rest[0].text == "in":
		return p.localSize(line, quals)
	case quals.has("push_constant"):
		return p.pushBlock(line, quals, rest)
	case quals.has("constant_id"):
		return p.specConstant(line, quals, rest)
	case quals.has("binding") && len(rest) > 1 && rest[0].text == "uniform" && rest[1].text == "textureBuffer":
		return p.texelBuffer(line, quals, rest)
	case quals.has("binding") && len(rest) > 1 && rest[0].text == "uniform" && rest[1].text == "samplerBuffer":
		return p.errAt(line, "samplerBuffer: declare a textureBuffer and read it with texelFetch (GL_EXT_samplerless_texture_functions); a sampled buffer image is deprecated SPIR-V")
	case quals.has("binding"):
		return p.buffer(line, quals, rest)
	}
	return p.errAt(line, "unrecognised layout declaration %q", join(st))
}

// qualifier is one layout(...) entry; value is -1 when it has none.
type qualifier struct {
	name  string
	value int
}

type qualifiers []qualifier

func (qs qualifiers) has(name string) bool {
	return slices.ContainsFunc(qs, func(q qualifier) bool { return q.name == name })
}

// only checks that every qualifier is in allowed, and that the valued ones
// (allowed[name] true) have a value and the others do not.
func (p *parser) only(line int, qs qualifiers, what string, allowed map[string]bool) error {
	for _, q := range qs {
		valued, ok := allowed[q.name]
		switch {
		case !ok:
			return p.errAt(line, "layout qualifier %s is not supported on %s", q.name, what)
		case valued && q.value < 0:
			return p.errAt(line, "layout qualifier %s on %s needs a value", q.name, what)
		case !valued && q.value >= 0:
			return p.errAt(line, "layout qualifier %s on %s takes no value", q.name, what)
		}
	}
	return nil
}

func (qs qualifiers) value(name string) int {
	for _, q := range qs {
		if q.name == name {
			return q.value
		}
	}
	return -1
}

// layoutQualifiers parses "layout ( name [= int] {, name [= int]} )" at
// the start of st and returns the qualifiers and the tokens after them.
func (p *parser) layoutQualifiers(st []token) (qualifiers, []token, error) {
	line := st[0].line
	if len(st) < 3 || st[1].text != "(" {
		return nil, nil, p.errAt(line, "layout without a qualifier list")
	}
	var qs qualifiers
	i := 2
	for {
		if i >= len(st) || !isIdentStart(st[i].text[0]) {
			return nil, nil, p.errAt(line, "malformed layout qualifier list %q", join(st))
		}
		q := qualifier{name: st[i].text, value: -1}
		i++
		if i < len(st) && st[i].text == "=" {
			if i+1 >= len(st) {
				return nil, nil, p.errAt(line, "malformed layout qualifier list %q", join(st))
			}
			v, err := parseUint(st[i+1].text)
			if err != nil {
				return nil, nil, p.errAt(line, "layout qualifier %s = %s: want a non-negative integer", q.name, st[i+1].text)
			}
			q.value = v
			i += 2
		}
		if qs.has(q.name) {
			return nil, nil, p.errAt(line, "layout qualifier %s given twice", q.name)
		}
		qs = append(qs, q)
		if i >= len(st) {
			return nil, nil, p.errAt(line, "malformed layout qualifier list %q", join(st))
		}
		if st[i].text == ")" {
			return qs, st[i+1:], nil
		}
		if st[i].text != "," {
			return nil, nil, p.errAt(line, "malformed layout qualifier list %q", join(st))
		}
		i++
	}
}

// parseUint reads a GLSL integer literal (decimal, octal or hex, optional
// u suffix) that fits in an int32.
func parseUint(s string) (int, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "u"), "U")
	v, err := strconv.ParseUint(s, 0, 31)
	return int(v), err
}

var localNames = [3]string{"local_size_x", "local_size_y", "local_size_z"}

// localSize reads "layout(local_size_x = 256, local_size_y_id = 1) in;".
func (p *parser) localSize(line int, qs qualifiers) error {
	if p.sawLocal {
		return p.errAt(line, "a second workgroup-size declaration")
	}
	p.sawLocal = true
	allowed := map[string]bool{}
	for _, n := range localNames {
		allowed[n], allowed[n+"_id"] = true, true
	}
	if err := p.only(line, qs, "the workgroup size", allowed); err != nil {
		return err
	}
	p.sh.LocalSize = [3]uint32{1, 1, 1}
	for d, n := range localNames {
		v, id := qs.value(n), qs.value(n+"_id")
		switch {
		case v >= 0 && id >= 0:
			return p.errAt(line, "%s given both as a size and as a constant id", n)
		case v == 0:
			return p.errAt(line, "%s is 0", n)
		case v > 0:
			p.sh.LocalSize[d] = uint32(v)
		case id >= 0:
			p.sh.LocalSize[d] = 0
			if err := p.addSpec(line, id, Spec{Name: n, Type: "uint"}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) addSpec(line, id int, s Spec) error {
	if p.spec == nil {
		p.spec = map[int]Spec{}
	}
	if old, ok := p.spec[id]; ok {
		return p.errAt(line, "constant_id %d used by both %s and %s", id, old.Name, s.Name)
	}
	p.spec[id] = s
	return nil
}

// specConstant reads "layout(constant_id = N) const TYPE NAME = VALUE;".
func (p *parser) specConstant(line int, qs qualifiers, rest []token) error {
	if err := p.only(line, qs, "a specialization constant", map[string]bool{"constant_id": true}); err != nil {
		return err
	}
	if len(rest) < 6 || rest[0].text != "const" || !isIdentStart(rest[2].text[0]) || rest[3].text != "=" {
		return p.errAt(line, "specialization constant: want const TYPE NAME = VALUE;")
	}
	typ := rest[1].text
	if !slices.Contains([]string{"bool", "int", "uint", "float"}, typ) {
		return p.errAt(line, "specialization constant %s: type %s is not a 32-bit scalar", rest[2].text, typ)
	}
	return p.addSpec(line, qs.value("constant_id"), Spec{Name: rest[2].text, Type: typ})
}

// buffer reads "layout(std430, binding = N[, set = 0]) QUALS buffer NAME
// { ... } [INSTANCE];".
func (p *parser) buffer(line int, qs qualifiers, rest []token) error {
	if err := p.only(line, qs, "a storage buffer", map[string]bool{"std430": false, "binding": true, "set": true}); err != nil {
		return err
	}
	if !qs.has("std430") {
		return p.errAt(line, "storage buffer without std430")
	}
	if s := qs.value("set"); s > 0 {
		return p.errAt(line, "descriptor set %d: every binding is in set 0", s)
	}
	access, seen := ReadWrite, map[string]bool{}
	i := 0
	for ; i < len(rest) && rest[i].text != "buffer"; i++ {
		q := rest[i].text
		switch {
		case seen[q]:
			return p.errAt(line, "qualifier %s given twice", q)
		case q == "readonly" || q == "writeonly":
			if access != ReadWrite {
				return p.errAt(line, "buffer both readonly and writeonly")
			}
			access = map[string]Access{"readonly": ReadOnly, "writeonly": WriteOnly}[q]
		case q == "restrict" || q == "coherent" || q == "volatile":
		default:
			return p.errAt(line, "unrecognised buffer declaration %q (only storage buffers: qualifiers, then buffer NAME { ... })", join(rest))
		}
		seen[q] = true
	}
	if i+2 >= len(rest) || !isIdentStart(rest[i+1].text[0]) || rest[i+2].text != "{" || !endsBlock(rest[i+2:]) {
		return p.errAt(line, "storage buffer: want buffer NAME { ... } [INSTANCE];")
	}
	name, b := rest[i+1].text, qs.value("binding")
	if p.bindings == nil {
		p.bindings = map[int]*Binding{}
	}
	old := p.bindings[b]
	if old == nil {
		p.bindings[b] = &Binding{Blocks: []string{name}, Access: access}
		return nil
	}
	if old.Texel {
		return p.errAt(line, "binding %d is both a texel buffer and a storage buffer", b)
	}
	old.Blocks = append(old.Blocks, name)
	if old.Access != access {
		old.Access = ReadWrite
	}
	return nil
}

// texelBuffer reads "layout(binding = N[, set = 0]) uniform textureBuffer
// NAME;": a uniform texel buffer the vk package views as RGBA32F texels.
func (p *parser) texelBuffer(line int, qs qualifiers, rest []token) error {
	if err := p.only(line, qs, "a texel buffer", map[string]bool{"binding": true, "set": true}); err != nil {
		return err
	}
	if s := qs.value("set"); s > 0 {
		return p.errAt(line, "descriptor set %d: every binding is in set 0", s)
	}
	if len(rest) != 4 || !isIdentStart(rest[2].text[0]) || rest[3].text != ";" {
		return p.errAt(line, "texel buffer: want uniform textureBuffer NAME;")
	}
	b := qs.value("binding")
	if p.bindings == nil {
		p.bindings = map[int]*Binding{}
	}
	if p.bindings[b] != nil {
		return p.errAt(line, "binding %d declared twice (a texel buffer shares it with nothing)", b)
	}
	p.bindings[b] = &Binding{Blocks: []string{rest[2].text}, Access: ReadOnly, Texel: true}
	return nil
}

// endsBlock reports whether st, starting at '{', is "{ ... } [NAME] ;".
func endsBlock(st []token) bool {
	depth := 0
	for i, t := range st {
		switch t.text {
		case "{":
			depth++
		case "}":
			depth--
			if depth == 0 {
				tail := st[i+1:]
				return len(tail) == 1 || len(tail) == 2 && isIdentStart(tail[0].text[0])
			}
		}
	}
	return false
}

// pushBlock reads "layout(push_constant[, std430]) uniform NAME { MEMBERS
// } [INSTANCE];" with members "TYPE NAME {, NAME};".
func (p *parser) pushBlock(line int, qs qualifiers, rest []token) error {
	if err := p.only(line, qs, "a push-constant block", map[string]bool{"push_constant": false, "std430": false}); err != nil {
		return err
	}
	if p.sh.Push != nil {
		return p.errAt(line, "a second push-constant block")
	}
	if len(rest) < 4 || rest[0].text != "uniform" || !isIdentStart(rest[1].text[0]) || rest[2].text != "{" || !endsBlock(rest[2:]) {
		return p.errAt(line, "push constants: want uniform NAME { MEMBERS } [INSTANCE];")
	}
	blk := &Block{Name: rest[1].text}
	body := rest[3:]
	for body[0].text != "}" {
		t := body[0]
		pt, ok := pushTypes[t.text]
		if !ok {
			return p.errAt(t.line, "push constant member type %s: want a 32-bit scalar or vector (%s)", t.text, typeList())
		}
		i := 1
		for {
			if !isIdentStart(body[i].text[0]) {
				return p.errAt(t.line, "push constant %s member: want TYPE NAME {, NAME};, found %q", t.text, body[i].text)
			}
			name := body[i].text
			if slices.ContainsFunc(blk.Members, func(m Member) bool { return m.Name == name }) {
				return p.errAt(t.line, "push constant %s declared twice", name)
			}
			off := (blk.Size + pt.align - 1) / pt.align * pt.align
			blk.Members = append(blk.Members, Member{Name: name, Type: t.text, Offset: off})
			blk.Size = off + 4*pt.n
			switch body[i+1].text {
			case ",":
				i += 2
				continue
			case ";":
			default:
				return p.errAt(t.line, "push constant %s: unsupported declaration (arrays, qualifiers and initialisers are not), found %q", name, body[i+1].text)
			}
			body = body[i+2:]
			break
		}
	}
	if len(blk.Members) == 0 {
		return p.errAt(line, "empty push-constant block")
	}
	if blk.Size > maxPushSize {
		return p.errAt(line, "push-constant block of %d bytes exceeds the %d every device provides", blk.Size, maxPushSize)
	}
	p.sh.Push = blk
	return nil
}

func typeList() string {
	var ts []string
	for t := range pushTypes {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return strings.Join(ts, " ")
}

// finish checks what the declarations add up to: bindings 0..n-1 and
// constant ids 0..n-1 without gaps (the vk package numbers them so), and a
// workgroup size.
func (p *parser) finish() error {
	if !p.sawLocal {
		return p.errAt(0, "no workgroup-size declaration (layout(local_size_x = ...) in;)")
	}
	for b := range len(p.bindings) {
		if p.bindings[b] == nil {
			return p.errAt(0, "bindings must be 0..%d without gaps; %d is missing", len(p.bindings)-1, b)
		}
		p.sh.Bindings = append(p.sh.Bindings, *p.bindings[b])
	}
	for id := range len(p.spec) {
		s, ok := p.spec[id]
		if !ok {
			return p.errAt(0, "constant ids must be 0..%d without gaps; %d is missing", len(p.spec)-1, id)
		}
		p.sh.Spec = append(p.sh.Spec, s)
	}
	return nil
}

func join(st []token) string {
	var b strings.Builder
	for i, t := range st {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}
