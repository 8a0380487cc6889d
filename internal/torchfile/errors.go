package torchfile

import "strconv"

// FormatError reports a file that is not a valid PyTorch checkpoint: wrong
// magic, a truncated or damaged pickle, a tensor that reaches past its
// storage.
type FormatError struct {
	File    string // the file's name; empty for Read
	Tensor  string // the state_dict key involved; empty if none
	Problem string
}

func (e *FormatError) Error() string {
	return message("invalid PyTorch file", e.File, e.Tensor, e.Problem)
}

// UnsupportedError reports a valid PyTorch file that holds something this
// package does not read: a dtype other than float32, float64, float16,
// bfloat16 and int64, a value that is not a tensor, a Python global outside
// the allowed set, a big-endian file.
type UnsupportedError struct {
	File    string // the file's name; empty for Read
	Tensor  string // the state_dict key involved; empty if none
	Problem string
}

func (e *UnsupportedError) Error() string {
	return message("unsupported PyTorch file", e.File, e.Tensor, e.Problem)
}

func message(kind, file, tensor, problem string) string {
	s := "torchfile: "
	if file != "" {
		s += file + ": "
	}
	s += kind + ": "
	if tensor != "" {
		s += "tensor " + strconv.Quote(tensor) + ": "
	}
	return s + problem
}

var (
	_ error = (*FormatError)(nil)
	_ error = (*UnsupportedError)(nil)
)
