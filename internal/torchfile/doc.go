// Package torchfile reads PyTorch checkpoints that hold a state_dict, such
// as pytorch-fid's FID Inception weights (pt_inception-2015-12-05-6726825d.pth),
// so vkgan can load published weights without Python.
//
// The surface is ReadFile and Read, which return a map from the
// state_dict's keys to Tensors, and two error types. Both torch.save
// formats are read:
//
//   - zip (PyTorch 1.6 and later): <archive>/data.pkl holds the pickled
//     state_dict, <archive>/data/<key> each storage's raw bytes, and an
//     optional <archive>/byteorder record says "little".
//   - legacy (before 1.6, or _use_new_zipfile_serialization=False): five
//     pickles back to back (magic number 0x1950a86a20f9469cfc6c, protocol
//     version 1001, sys_info, the state_dict, its storage keys), then each
//     storage as an 8-byte little-endian element count and its bytes.
//
// The file's top-level value must be a dict or OrderedDict from str to
// tensors or nn.Parameters. A checkpoint that nests its state_dict under a
// key, a non-tensor value and a tensor of another dtype are
// *UnsupportedErrors naming the key.
//
// Dtypes: float32 is returned as stored; float64 is rounded to float32
// (as tensor.float() does) and float16 and bfloat16 are widened exactly,
// all in Tensor.F32. int64 tensors, such as BatchNorm's
// num_batches_tracked, are kept in Tensor.I64. Tensor.DType says which the
// file held.
//
// Tensors are views of storages, with an offset and strides, and several
// may share one storage. Each comes back as its own contiguous row-major
// copy: a transposed or sliced view reads as the values it shows.
//
// Reading never runs code from the file. The pickle machine here maps the
// few Python names a state_dict uses (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and its relatives, torch.*Storage) to Go
// values, and any other name is an error that says which. Every length in
// the file is checked against the bytes left before it is allocated, and
// every tensor against its storage before a storage is read: a damaged or
// hostile file costs an error, not a panic or unbounded memory. Storages
// are read one at a time and dropped once their tensors are copied, so
// reading costs the tensors' float32 size plus the largest storage.
//
// The test fixtures in testdata come from testdata/gen.py, which needs
// Debian's torch: run /usr/bin/python3 internal/torchfile/testdata/gen.py
// and commit the result. The tests themselves need no Python; one of them
// regenerates the fixtures into a temporary directory when torch is there
// and checks them against the committed ones.
package torchfile
