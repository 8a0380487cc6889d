package kernelgen

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// snippet declares every form the parser accepts: a workgroup size with a
// specialization-constant dimension, constants, aliased and instanced
// buffers, a texel buffer, and a push-constant block whose vectors need std430 padding.
// main uses everything, so glslc's optimiser keeps it all.
const snippet = `#version 450
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : enable
#extension GL_EXT_samplerless_texture_functions : enable
layout(local_size_x_id = 1, local_size_y = 4) in;
layout(constant_id = 0) const uint MODE = 0u;
layout(constant_id = 2) const bool FAST = false;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) writeonly buffer B { float b[]; } bo;
layout(std430, binding = 1) writeonly buffer B2 { vec2 b2[]; };
layout(std430, binding = 2) restrict buffer C { uint c[]; };
layout(binding = 3) uniform textureBuffer T;
// a comment: layout(binding = 9) buffer X { float x[]; };
/* another { one } */
layout(push_constant) uniform P {
    uint n; vec3 dir; float s;
    uvec2 u; int i, j; bool flag;
    vec4 col;
} p;
shared float tile[64];
const float two = 2.0;

float helper(in float x) { return x * two; }

void main() {
    uint g = gl_GlobalInvocationID.x;
    if (g >= p.n) return;
    float v = a[g] * p.s + p.dir.x + p.dir.y + p.dir.z + float(p.u.x + p.u.y) +
        float(p.i - p.j) + (p.flag ? 1.0 : 0.0) + dot(p.col, vec4(1.0)) + texelFetch(T, int(g)).x;
    if (MODE == 1u && FAST) v = helper(v);
    tile[gl_LocalInvocationID.x % 64u] = v;
    bo.b[g] = tile[0];
    b2[g] = vec2(v);
    c[g] = uint(v);
}
`

var snippetShader = &Shader{
	Name:   "snip",
	Source: "snip.comp",
	Bindings: []Binding{
		{Blocks: []string{"A"}, Access: ReadOnly},
		{Blocks: []string{"B", "B2"}, Access: WriteOnly},
		{Blocks: []string{"C"}, Access: ReadWrite},
		{Blocks: []string{"T"}, Access: ReadOnly, Texel: true},
	},
	Spec:      []Spec{{"MODE", "uint"}, {"local_size_x", "uint"}, {"FAST", "bool"}},
	LocalSize: [3]uint32{0, 4, 1},
	Push: &Block{Name: "P", Size: 80, Members: []Member{
		{"n", "uint", 0},
		{"dir", "vec3", 16}, // a 3-vector aligns to 16
		{"s", "float", 28},  // and a scalar may follow in its last word
		{"u", "uvec2", 32},
		{"i", "int", 40},
		{"j", "int", 44},
		{"flag", "bool", 48},
		{"col", "vec4", 64},
	}},
}

func TestParse(t *testing.T) {
	sh, err := Parse("snip", "snip.comp", snippet)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sh, snippetShader) {
		t.Errorf("Parse:\n got %+v\nwant %+v", sh, snippetShader)
		if sh.Push != nil {
			t.Errorf("push block: got %+v", *sh.Push)
		}
	}
}

// TestParseErrors checks that every form the parser does not know is an
// error naming the problem, never a silent skip.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const local = "layout(local_size_x = 64) in;\n"
	for _, tc := range []struct {
		name, src, want string
	}{
		{"std140 push block", local + "layout(std140, push_constant) uniform P { uint n; } p;", "std140 is not supported on a push-constant block"},
		{"matrix member", local + "layout(push_constant) uniform P { mat4 m; } p;", "member type mat4"},
		{"double member", local + "layout(push_constant) uniform P { double d; } p;", "member type double"},
		{"array member", local + "layout(push_constant) uniform P { uint n[4]; } p;", `unsupported declaration (arrays, qualifiers and initialisers are not), found "["`},
		{"member offset", local + "layout(push_constant) uniform P { layout(offset = 4) uint n; } p;", "member type layout"},
		{"empty push block", local + "layout(push_constant) uniform P { } p;", "empty push-constant block"},
		{"two push blocks", local + "layout(push_constant) uniform P { uint n; } p;\nlayout(push_constant) uniform Q { uint m; } q;", "a second push-constant block"},
		{"push block too large", local + "layout(push_constant) uniform P { uvec4 a, b, c, d, e, f, g, h; uint x; } p;", "132 bytes exceeds the 128"},
		{"binding gap", local + "layout(std430, binding = 0) buffer X { float x[]; };\nlayout(std430, binding = 2) buffer Y { float y[]; };", "1 is missing"},
		{"descriptor set", local + "layout(std430, set = 1, binding = 0) buffer X { float x[]; };", "descriptor set 1"},
		{"no std430", local + "layout(binding = 0) buffer X { float x[]; };", "without std430"},
		{"std140 buffer", local + "layout(std140, binding = 0) buffer X { float x[]; };", "std140 is not supported on a storage buffer"},
		{"uniform buffer", local + "layout(std430, binding = 0) uniform U { float u; };", "unrecognised buffer declaration"},
		{"image", local + "layout(rgba8, binding = 0) uniform image2D img;", "rgba8 is not supported on a storage buffer"},
		{"readonly and writeonly", local + "layout(std430, binding = 0) readonly writeonly buffer X { float x[]; };", "both readonly and writeonly"},
		{"texel buffer sharing a storage binding", local + "layout(std430, binding = 0) buffer X { float x[]; };\nlayout(binding = 0) uniform textureBuffer t;", "binding 0 declared twice"},
		{"storage buffer sharing a texel binding", local + "layout(binding = 0) uniform textureBuffer t;\nlayout(std430, binding = 0) buffer X { float x[]; };", "both a texel buffer and a storage buffer"},
		{"texel buffer with std430", local + "layout(std430, binding = 0) uniform textureBuffer t;", "std430 is not supported on a texel buffer"},
		{"texel buffer without a name", local + "layout(binding = 0) uniform textureBuffer;", "want uniform textureBuffer NAME;"},
		{"sampler buffer", local + "layout(binding = 0) uniform samplerBuffer t;", "declare a textureBuffer"},
		{"texel buffer in set 1", local + "layout(set = 1, binding = 0) uniform textureBuffer t;", "descriptor set 1"},
		{"plain uniform", local + "uniform float scale;", "unrecognised declaration"},
		{"buffer without layout", local + "buffer X { float x[]; };", "unrecognised declaration"},
		{"qualifier before layout", local + "readonly layout(std430, binding = 0) buffer X { float x[]; };", "unrecognised declaration"},
		{"output", local + "layout(location = 0) out vec4 color;", "unrecognised layout declaration"},
		{"spec gap", local + "layout(constant_id = 1) const uint M = 0u;", "0 is missing"},
		{"spec vector", local + "layout(constant_id = 0) const vec2 V = vec2(0);", "not a 32-bit scalar"},
		{"spec id twice", "layout(local_size_x_id = 0) in;\nlayout(constant_id = 0) const uint M = 0u;", "constant_id 0 used by both local_size_x and M"},
		{"no workgroup size", "layout(std430, binding = 0) buffer X { float x[]; };", "no workgroup-size declaration"},
		{"two workgroup sizes", local + "layout(local_size_y = 2) in;", "a second workgroup-size declaration"},
		{"macro left", "#define WG 64\nlayout(local_size_x = WG) in;", `directive "#define WG 64"`},
		{"unterminated", "layout(local_size_x = 64) in", "does not end"},
	} {
		_, err := Parse("bad", "bad.comp", tc.src)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		}
	}
}

// compile builds src with glslc as gen.go does; the test skips without it.
func compile(t *testing.T, src string) []byte {
	t.Helper()
	if _, err := exec.LookPath("glslc"); err != nil {
		t.Skip("glslc not installed (make deps)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "k.comp"), filepath.Join(dir, "k.spv")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("glslc", "--target-env=vulkan1.1", "-O", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("glslc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckSPIRV checks the parser's std430 offsets against glslc's, and
// that a module whose block is laid out otherwise is rejected.
func TestCheckSPIRV(t *testing.T) {
	module := compile(t, snippet)
	if err := CheckSPIRV(snippetShader, module); err != nil {
		t.Fatalf("the parsed snippet disagrees with glslc: %v", err)
	}

	// A packer that ignored vec3's 16-byte alignment would put dir at 4.
	wrong := *snippetShader
	wrong.Push = &Block{Name: "P", Size: snippetShader.Push.Size, Members: append([]Member(nil), snippetShader.Push.Members...)}
	wrong.Push.Members[1].Offset = 4
	err := CheckSPIRV(&wrong, module)
	if err == nil || !strings.Contains(err.Error(), "push constant vec3 dir at offset 16, the std430 layout gives 4") {
		t.Errorf("wrong dir offset: got %v", err)
	}

	// A module built from a block with its members swapped (a source
	// edited after the Go was generated) fails too.
	swapped := strings.Replace(snippet, "uint n; vec3 dir; float s;", "uint n; float s; vec3 dir;", 1)
	if err := CheckSPIRV(snippetShader, compile(t, swapped)); err == nil || !strings.Contains(err.Error(), "at offset") {
		t.Errorf("swapped members: got %v", err)
	}

	// A module using a binding or constant the parse does not know.
	fewer := *snippetShader
	fewer.Bindings = fewer.Bindings[:2]
	if err := CheckSPIRV(&fewer, module); err == nil || !strings.Contains(err.Error(), "is not among the 2") {
		t.Errorf("unknown binding: got %v", err)
	}
	fewer = *snippetShader
	fewer.Spec = fewer.Spec[:2]
	if err := CheckSPIRV(&fewer, module); err == nil || !strings.Contains(err.Error(), "constant id 2 is not among the 2") {
		t.Errorf("unknown constant: got %v", err)
	}

	// A texel buffer the parse took for a storage buffer, and the reverse.
	kinds := *snippetShader
	kinds.Bindings = slices.Clone(snippetShader.Bindings)
	kinds.Bindings[3].Texel = false
	if err := CheckSPIRV(&kinds, module); err == nil || !strings.Contains(err.Error(), "binding 3 is not a storage buffer") {
		t.Errorf("texel buffer as storage: got %v", err)
	}
	kinds.Bindings[3].Texel = true
	kinds.Bindings[2].Texel = true
	if err := CheckSPIRV(&kinds, module); err == nil || !strings.Contains(err.Error(), "binding 2 is not a texel buffer") {
		t.Errorf("storage buffer as texel: got %v", err)
	}

	if err := CheckSPIRV(snippetShader, []byte("not spirv")); err == nil {
		t.Error("garbage module: no error")
	}
}

func TestGenerate(t *testing.T) {
	sh := *snippetShader
	variant := sh
	variant.Name = "snip_wide"
	plain := &Shader{Name: "plain", Source: "plain.comp", LocalSize: [3]uint32{1, 1, 1},
		Bindings: []Binding{{Blocks: []string{"C"}}}}
	code, err := Generate([]*Shader{&variant, &sh, plain})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := format.Source(code); err != nil || !bytes.Equal(f, code) {
		t.Errorf("output is not gofmt-ed (%v)", err)
	}
	src := string(code)
	for _, want := range []string{
		"// Code generated by gen.go from shaders/*.comp; DO NOT EDIT.",
		"var Plain = &Kernel[NoPush]{Desc{",
		"var Snip = &Kernel[SnipPush]{Desc{",
		"var SnipWide = &Kernel[SnipPush]{Desc{", // the variant shares the struct
		`{Name: "B/B2", Access: WriteOnly},`,
		`{Name: "local_size_x", Type: "uint"},`,
		"PushSize:  80,",
		"LocalSize: [3]uint32{0, 4, 1},",
		"Dir  [3]float32 // vec3 dir, offset 16",
		"Flag bool       // bool flag, offset 48",
		"I    int32      // int i, offset 40",
		"b := make([]byte, 80)",
		"putFloat(b, 16, p.Dir[0])\n\tputFloat(b, 20, p.Dir[1])\n\tputFloat(b, 24, p.Dir[2])\n\tputFloat(b, 28, p.S)",
		"putUint(b, 36, p.U[1])",
		"putInt(b, 44, p.J)",
		"putBool(b, 48, p.Flag)",
		"putFloat(b, 76, p.Col[3])",
		"var All = []*Desc{\n\t&Plain.Desc,\n\t&Snip.Desc,\n\t&SnipWide.Desc,\n}",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("generated code lacks %q", want)
		}
	}
	if strings.Count(src, "type SnipPush struct") != 1 {
		t.Error("want exactly one SnipPush")
	}

	// A variant whose block differs gets its own struct.
	variant.Push = &Block{Name: "P", Size: 4, Members: []Member{{"n", "uint", 0}}}
	code, err = Generate([]*Shader{&sh, &variant})
	if err != nil || !strings.Contains(string(code), "var SnipWide = &Kernel[SnipWidePush]") {
		t.Errorf("variant with its own block: %v", err)
	}

	for _, tc := range []struct {
		name string
		shs  []*Shader
		want string
	}{
		{"reserved name", []*Shader{{Name: "spec", Source: "spec.comp"}}, "Spec is taken by package shaders"},
		{"name clash", []*Shader{{Name: "a_b", Source: "a_b.comp"}, {Name: "aB", Source: "aB.comp"}}, "both want the Go name AB"},
		{"field clash", []*Shader{{Name: "k", Source: "k.comp", Push: &Block{Name: "P", Size: 8,
			Members: []Member{{"seed_lo", "uint", 0}, {"seedLo", "uint", 4}}}}}, "no Go field name of its own"},
	} {
		if _, err := Generate(tc.shs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
