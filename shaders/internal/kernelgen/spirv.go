package kernelgen

import (
	"encoding/binary"
	"fmt"
)

// SPIR-V opcodes, decorations and storage classes CheckSPIRV reads.
//
// Reference: https://registry.khronos.org/SPIR-V/specs/unified1/SPIRV.html
const (
	spvMagic = 0x07230203

	opTypeStruct     = 30
	opTypePointer    = 32
	opVariable       = 59
	opDecorate       = 71
	opMemberDecorate = 72

	decSpecID        = 1
	decBinding       = 33
	decDescriptorSet = 34
	decOffset        = 35

	scUniformConstant = 0 // samplers and images, texel buffers among them
	scUniform         = 2
	scPushConstant    = 9
	scStorageBuffer   = 12
)

// CheckSPIRV checks sh, parsed from GLSL, against the module glslc built
// from the same source: the push-constant block's member count and every
// member's offset must be the compiler's, and every binding and constant
// id the module uses must be one sh declares. The optimiser may drop
// unused bindings and constants, so the module's may be fewer.
func CheckSPIRV(sh *Shader, module []byte) error {
	fail := func(format string, a ...any) error {
		return &Error{Source: sh.Source, Shader: sh.Name, Msg: "SPIR-V: " + fmt.Sprintf(format, a...)}
	}
	if len(module)%4 != 0 || len(module) < 20 || binary.LittleEndian.Uint32(module) != spvMagic {
		return fail("not a little-endian SPIR-V module")
	}
	words := make([]uint32, len(module)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(module[4*i:])
	}
	type variable struct{ ptr, class uint32 }
	var (
		vars      = map[uint32]variable{}
		pointee   = map[uint32]uint32{} // pointer type -> pointee type
		members   = map[uint32]int{}    // struct type -> member count
		offsets   = map[[2]uint32]int{} // (struct, member) -> Offset
		bindingOf = map[uint32]int{}
		setOf     = map[uint32]int{}
		specIDs   []int
	)
	for i := 5; i < len(words); {
		n, op := int(words[i]>>16), words[i]&0xffff
		if n == 0 || i+n > len(words) {
			return fail("malformed instruction at word %d", i)
		}
		w := words[i+1 : i+n]
		switch {
		case op == opTypeStruct && len(w) >= 1:
			members[w[0]] = len(w) - 1
		case op == opTypePointer && len(w) == 3:
			pointee[w[0]] = w[2]
		case op == opVariable && len(w) >= 3:
			vars[w[1]] = variable{w[0], w[2]}
		case op == opDecorate && len(w) == 3 && w[1] == decBinding:
			bindingOf[w[0]] = int(w[2])
		case op == opDecorate && len(w) == 3 && w[1] == decDescriptorSet:
			setOf[w[0]] = int(w[2])
		case op == opDecorate && len(w) == 3 && w[1] == decSpecID:
			specIDs = append(specIDs, int(w[2]))
		case op == opMemberDecorate && len(w) == 4 && w[2] == decOffset:
			offsets[[2]uint32{w[0], w[1]}] = int(w[3])
		}
		i += n
	}

	for id, b := range bindingOf {
		v, ok := vars[id]
		switch {
		case setOf[id] != 0:
			return fail("binding %d is in descriptor set %d", b, setOf[id])
		case b >= len(sh.Bindings):
			return fail("binding %d is not among the %d the source declares", b, len(sh.Bindings))
		case sh.Bindings[b].Texel && (!ok || v.class != scUniformConstant):
			return fail("binding %d is not a texel buffer", b)
		case !sh.Bindings[b].Texel && (!ok || (v.class != scStorageBuffer && v.class != scUniform)):
			return fail("binding %d is not a storage buffer", b)
		}
	}
	for _, id := range specIDs {
		if id >= len(sh.Spec) {
			return fail("constant id %d is not among the %d the source declares", id, len(sh.Spec))
		}
	}

	var push []uint32 // struct types of push-constant variables
	for _, v := range vars {
		if v.class == scPushConstant {
			push = append(push, pointee[v.ptr])
		}
	}
	switch {
	case len(push) > 1:
		return fail("%d push-constant variables", len(push))
	case len(push) == 0 && sh.Push != nil:
		return fail("the push-constant block %s is declared but unused (the module has none)", sh.Push.Name)
	case len(push) == 1 && sh.Push == nil:
		return fail("push constants the source does not declare")
	case len(push) == 0:
		return nil
	}
	st, blk := push[0], sh.Push
	if members[st] != len(blk.Members) {
		return fail("push-constant block %s has %d members, the source %d", blk.Name, members[st], len(blk.Members))
	}
	for i, m := range blk.Members {
		off, ok := offsets[[2]uint32{st, uint32(i)}]
		if !ok {
			return fail("push constant %s has no offset", m.Name)
		}
		if off != m.Offset {
			return fail("push constant %s %s at offset %d, the std430 layout gives %d", m.Type, m.Name, off, m.Offset)
		}
	}
	return nil
}
