package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// want is one tensor of testdata/expected.json, as gen.py wrote it.
type want struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	F32Bits []uint32 `json:"f32_bits"`
	I64     []int64  `json:"i64"`
}

// readExpected returns expected.json's tensors by fixture, then name.
func readExpected(t testing.TB, dir string) map[string]map[string]want {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	require.NoError(t, err)
	var flat map[string]want
	require.NoError(t, json.Unmarshal(b, &flat))
	out := make(map[string]map[string]want)
	for k, w := range flat {
		fixture, name, ok := strings.Cut(k, "/")
		require.True(t, ok, k)
		if out[fixture] == nil {
			out[fixture] = make(map[string]want)
		}
		out[fixture][name] = w
	}
	return out
}

// requireTensors compares bit for bit; a NaN matches any NaN, since
// float64 to float32 conversion need not keep a NaN's payload.
func requireTensors(t testing.TB, want map[string]want, got map[string]Tensor) {
	t.Helper()
	var wantNames, gotNames []string
	for k := range want {
		wantNames = append(wantNames, k)
	}
	for k := range got {
		gotNames = append(gotNames, k)
	}
	slices.Sort(wantNames)
	slices.Sort(gotNames)
	require.Equal(t, wantNames, gotNames)
	for name, w := range want {
		g := got[name]
		require.Equal(t, w.DType, g.DType, name)
		require.Equal(t, w.Shape, g.Shape, name)
		require.NotNil(t, g.Shape, name)
		if w.DType == Int64 {
			require.Nil(t, g.F32, name)
			require.Equal(t, w.I64, g.I64, name)
			continue
		}
		require.Nil(t, g.I64, name)
		require.NotNil(t, g.F32, name)
		require.Len(t, g.F32, len(w.F32Bits), name)
		for i, wb := range w.F32Bits {
			gb := math.Float32bits(g.F32[i])
			wf := math.Float32frombits(wb)
			if gb != wb && !(wf != wf && g.F32[i] != g.F32[i]) {
				t.Fatalf("%s[%d]: got %v (%#08x), want %v (%#08x)", name, i, g.F32[i], gb, wf, wb)
			}
		}
	}
}

// checkFixtures reads every fixture in dir, as gen.py writes them, against
// dir's expected.json.
func checkFixtures(t *testing.T, dir string) {
	expected := readExpected(t, dir)
	require.Len(t, expected, 2)
	for fixture, w := range expected {
		for _, format := range []string{"zip", "legacy"} {
			path := filepath.Join(dir, fixture+"_"+format+".pt")
			got, err := ReadFile(path)
			require.NoError(t, err, path)
			requireTensors(t, w, got)
		}
	}
	for _, c := range badFixtures {
		for _, format := range []string{"zip", "legacy"} {
			path := filepath.Join(dir, c.name+"_"+format+".pt")
			_, err := ReadFile(path)
			var ue *UnsupportedError
			require.ErrorAs(t, err, &ue, path)
			require.Equal(t, path, ue.File)
			require.Equal(t, c.tensor, ue.Tensor, path)
			require.Contains(t, err.Error(), c.contains, path)
		}
	}
}

// badFixtures are gen.py's valid files that torchfile refuses.
var badFixtures = []struct{ name, tensor, contains string }{
	{"bad_nested", "state_dict", `is an OrderedDict, not a tensor; the file looks like a checkpoint holding a state_dict (its keys: "state_dict", "epoch")`},
	{"bad_int32", "i", "dtype int32 (torch.IntStorage)"},
	{"bad_tensor", "", "the file holds a tensor, not a state_dict"},
	{"bad_expand", "e", "size [5] has 5 elements over a storage of 1"},
}

func TestReadFixtures(t *testing.T) {
	t.Parallel()
	checkFixtures(t, "testdata")
}

// TestReadZipLayouts: the archive's directory name and the records'
// compression are the writer's choice; torch 1.6 wrote archive/, later
// versions the file's stem, and a re-zipped file may deflate.
func TestReadZipLayouts(t *testing.T) {
	t.Parallel()
	expected := readExpected(t, "testdata")["state"]
	zr, err := zip.OpenReader("testdata/state_zip.pt")
	require.NoError(t, err)
	defer zr.Close()
	for _, c := range []struct {
		dir    string
		method uint16
	}{{"archive", zip.Store}, {"x", zip.Deflate}} {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for _, f := range zr.File {
			_, rest, _ := strings.Cut(f.Name, "/")
			out, err := w.CreateHeader(&zip.FileHeader{Name: c.dir + "/" + rest, Method: c.method})
			require.NoError(t, err)
			in, err := f.Open()
			require.NoError(t, err)
			_, err = io.Copy(out, in)
			require.NoError(t, err)
			in.Close()
		}
		require.NoError(t, w.Close())
		got, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err, c.dir)
		requireTensors(t, expected, got)
	}
}

// TestReadTruncated: every proper prefix of a fixture is an error that
// says the file is invalid, never a panic or a partial result.
func TestReadTruncated(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"state_zip.pt", "state_legacy.pt", "module_legacy.pt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		for n := range len(b) {
			got, err := Read(bytes.NewReader(b[:n]), int64(n))
			var fe *FormatError
			if !errors.As(err, &fe) || got != nil {
				t.Fatalf("%s cut to %d bytes: got %d tensors and error %v, want a *FormatError", name, n, len(got), err)
			}
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	t.Parallel()
	_, err := ReadFile(filepath.Join(t.TempDir(), "missing.pth"))
	require.ErrorIs(t, err, os.ErrNotExist)

	_, err = ReadFile(t.TempDir())
	require.ErrorContains(t, err, "not a regular file")

	_, err = Read(bytes.NewReader(nil), -1)
	require.ErrorContains(t, err, "negative size")

	path := filepath.Join(t.TempDir(), "weights.pth")
	require.NoError(t, os.WriteFile(path, []byte("<html>Not Found</html>"), 0o644))
	_, err = ReadFile(path)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	require.EqualError(t, err, `torchfile: `+path+`: invalid PyTorch file: starts with "<html>No", neither a zip archive nor a pickle`)
}
