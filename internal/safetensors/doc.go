// Package safetensors reads and writes safetensors files, the checkpoint
// format: an 8-byte little-endian header length N, N bytes of JSON
// describing each tensor (dtype, shape and byte offsets into the data
// section) plus optional string metadata, then the raw little-endian
// tensor data. PyTorch loads it without conversion.
// Reference: https://huggingface.co/docs/safetensors
//
// The surface is small, as image/png's: Encode and Decode on bytes,
// WriteFile and ReadFile on files, and two error types. A file that is
// not valid safetensors gives a *FormatError, a valid one that uses what
// this package does not handle (a BF16 tensor) an *UnsupportedError.
// Only F32, F64 and I64 tensors are read and written: vkgan's weights,
// the float64 feature statistics of engine/quality, and PyTorch's
// num_batches_tracked counters.
//
// Reading checks the whole header against the file's size before it
// allocates, and converts the data straight into the tensors: a damaged
// or hostile file costs at most its own size in memory. WriteFile is
// atomic: a crash leaves the old file or the new one, never a part.
//
// Error messages keep the "train: " prefix that vkgan's commands have
// always printed for checkpoint files.
package safetensors
