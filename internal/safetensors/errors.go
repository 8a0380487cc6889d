package safetensors

// FormatError reports a file that is not valid safetensors.
type FormatError struct{ File, Problem string }

func (e *FormatError) Error() string {
	if e.File == "" {
		return "train: invalid safetensors: " + e.Problem
	}
	return "train: " + e.File + ": invalid safetensors: " + e.Problem
}

// UnsupportedError reports a valid safetensors file that uses something this
// package does not handle, such as a BF16 tensor.
type UnsupportedError struct{ File, Problem string }

func (e *UnsupportedError) Error() string {
	if e.File == "" {
		return "train: unsupported safetensors: " + e.Problem
	}
	return "train: " + e.File + ": unsupported safetensors: " + e.Problem
}

var (
	_ error = (*FormatError)(nil)
	_ error = (*UnsupportedError)(nil)
)
