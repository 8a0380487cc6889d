package torchfile

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
)

// The legacy format's header values. Reference: torch/serialization.py
// (MAGIC_NUMBER, PROTOCOL_VERSION).
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

const legacyProtocol = 1001

// readLegacy reads the format torch.save wrote before PyTorch 1.6, and
// still does with _use_new_zipfile_serialization=False: five pickles back
// to back (magic number, protocol version, sys_info, the state_dict, the
// list of storage keys), then each storage in that list's order as an
// 8-byte little-endian element count and the raw elements.
func readLegacy(r io.ReaderAt, size int64, file string) (map[string]Tensor, error) {
	var pos int64
	next := func(obj objects, what string) (any, error) {
		v, n, err := unpickle(io.NewSectionReader(r, pos, size-pos), size-pos, obj, file, what, pos)
		pos += n
		return v, err
	}
	hdr := plain{file}
	v, err := next(hdr, "the file")
	if err != nil {
		return nil, err
	}
	if m, ok := v.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("starts with a pickled %s, not PyTorch's magic number: not written by torch.save", typeName(v))}
	}
	if v, err = next(hdr, "the file"); err != nil {
		return nil, err
	}
	if n, ok := v.(int64); !ok || n != legacyProtocol {
		return nil, &UnsupportedError{File: file, Problem: fmt.Sprintf("legacy protocol version %v, not %d", v, legacyProtocol)}
	}
	if v, err = next(hdr, "the file"); err != nil {
		return nil, err
	}
	info, ok := v.(*pyDict)
	if !ok {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("sys_info is %s, not a dict", aType(v))}
	}
	for i, k := range info.keys {
		if k == "little_endian" && info.vals[i] != true {
			return nil, &UnsupportedError{File: file, Problem: "saved on a big-endian machine"}
		}
	}

	l := newLoader(file)
	if v, err = next(l, "the file"); err != nil {
		return nil, err
	}
	names, tensors, err := l.stateDict(v)
	if err != nil {
		return nil, err
	}
	if err := l.plan(names, tensors); err != nil {
		return nil, err
	}
	if v, err = next(hdr, "the file"); err != nil {
		return nil, err
	}
	keys, ok := v.(*pyList)
	if !ok {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("the storage key list is %s, not a list", aType(v))}
	}

	out := make(map[string]Tensor, len(names))
	seen := make(map[string]bool, len(keys.items))
	for _, kv := range keys.items {
		key, ok := kv.(string)
		if !ok {
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("the storage key list holds %s, not a str", aType(kv))}
		}
		s := l.storages[key]
		switch {
		case s == nil:
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("the storage key list names %q, which no tensor uses", key)}
		case seen[key]:
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("the storage key list names %q twice", key)}
		}
		seen[key] = true
		var nb [8]byte
		if err := readFull(r, nb[:], pos, file); err != nil {
			return nil, err
		}
		if n := int64(binary.LittleEndian.Uint64(nb[:])); n != s.numel {
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("storage %q at byte %d has %d elements, but the pickle says %d", key, pos, n, s.numel)}
		}
		pos += 8
		nbytes := s.numel * s.typ.size // checked against overflow by persistent
		if nbytes > size-pos {
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("storage %q at byte %d needs %d bytes, but the file ends %d bytes later", key, pos, nbytes, size-pos)}
		}
		if len(s.users) > 0 {
			raw := make([]byte, nbytes)
			if err := readFull(r, raw, pos, file); err != nil {
				return nil, err
			}
			for _, i := range s.users {
				out[names[i]] = materialise(tensors[i], raw)
			}
		}
		pos += nbytes
	}
	for _, s := range l.order {
		if !seen[s.key] {
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("storage %q is missing from the storage key list", s.key)}
		}
	}
	return out, nil
}
