package quality

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"vkgan/internal/safetensors"
)

// Conditions in the data that FID, KID and the statistics report; errors
// wrap them with what was wrong where, so test them with errors.Is.
var (
	// ErrShape: sizes disagree, such as two sets of different feature
	// dimensions or a slice that is not a whole number of rows.
	ErrShape = errors.New("quality: shape mismatch")
	// ErrTooFew: fewer samples than the statistic needs (2 for a
	// covariance and for KID's unbiased estimator).
	ErrTooFew = errors.New("quality: too few samples")
	// ErrNonFinite: a NaN or infinity in features or statistics.
	ErrNonFinite = errors.New("quality: non-finite value")
	// ErrNotCovariance: a Sigma that no covariance can be (not symmetric,
	// or a negative variance).
	ErrNotCovariance = errors.New("quality: not a covariance matrix")
	// ErrFormat: a safetensors file that does not hold statistics as
	// SaveStats writes them.
	ErrFormat = errors.New("quality: not a feature statistics file")
	// ErrStale: cached statistics whose Key is not the one asked for;
	// compute them again.
	ErrStale = errors.New("quality: cached statistics are for other data")
)

// Stats are the mean and covariance of N feature vectors of Dim values:
// the Gaussian that FID compares. Those from an Accumulator are numpy's
// mean(axis=0) and cov(rowvar=False) of the same features in float64, to
// 1e-14 relative in our fixtures.
type Stats struct {
	N   int // feature vectors seen
	Dim int // values per vector
	// Mu is the mean, Dim values.
	Mu []float64
	// Sigma is the unbiased covariance (divided by N-1, as numpy.cov),
	// Dim×Dim row-major and symmetric.
	Sigma []float64
}

// Singular reports whether Sigma is singular for want of samples: N
// vectors span at most N-1 directions around their mean, so a covariance
// of N <= Dim samples has rank below Dim.
func (s Stats) Singular() bool { return s.N <= s.Dim }

// check reports a Stats whose parts do not fit together or hold values no
// covariance has; name says which set it is.
func (s Stats) check(name string) error {
	switch {
	case s.Dim < 1:
		return fmt.Errorf("quality: %s: dimension %d: %w", name, s.Dim, ErrShape)
	case len(s.Mu) != s.Dim:
		return fmt.Errorf("quality: %s: %d mean values for dimension %d: %w", name, len(s.Mu), s.Dim, ErrShape)
	case len(s.Sigma) != s.Dim*s.Dim:
		return fmt.Errorf("quality: %s: %d covariance values for dimension %d (want %d): %w", name, len(s.Sigma), s.Dim, s.Dim*s.Dim, ErrShape)
	case s.N < 2:
		return fmt.Errorf("quality: %s: %d samples, a covariance needs 2: %w", name, s.N, ErrTooFew)
	}
	if i := nonFinite64(s.Mu); i >= 0 {
		return fmt.Errorf("quality: %s: mean[%d] = %v: %w", name, i, s.Mu[i], ErrNonFinite)
	}
	if i := nonFinite64(s.Sigma); i >= 0 {
		return fmt.Errorf("quality: %s: covariance[%d][%d] = %v: %w", name, i/s.Dim, i%s.Dim, s.Sigma[i], ErrNonFinite)
	}
	d := s.Dim
	for i := range d {
		if v := s.Sigma[i*d+i]; v < 0 {
			return fmt.Errorf("quality: %s: variance %d is %v: %w", name, i, v, ErrNotCovariance)
		}
	}
	// Every computed covariance is symmetric to rounding; |s_ij - s_ji|
	// beyond that is a matrix from elsewhere (transposed data, a wrong
	// layout), for which FID's factorisation would quietly use one half.
	for i := range d {
		for j := i + 1; j < d; j++ {
			a, b := s.Sigma[i*d+j], s.Sigma[j*d+i]
			if math.Abs(a-b) > 1e-9*math.Sqrt(s.Sigma[i*d+i]*s.Sigma[j*d+j]) {
				return fmt.Errorf("quality: %s: covariance[%d][%d] = %v but [%d][%d] = %v: %w", name, i, j, a, j, i, b, ErrNotCovariance)
			}
		}
	}
	return nil
}

// ComputeStats is the Stats of features, N rows of dim float32 values one
// after another. See Accumulator for its cost.
func ComputeStats(features []float32, dim int) (Stats, error) {
	acc, err := NewAccumulator(dim)
	if err != nil {
		return Stats{}, err
	}
	if err := acc.Add(features); err != nil {
		return Stats{}, err
	}
	return acc.Stats()
}

// accBlock is the number of rows an Accumulator converts to float64 and
// folds in at once: the block (2 MiB at Dim 2048) stays in cache while
// Dsyrk walks it once per row of the covariance, which ran 64 to 128 rows
// at 8.8 GFLOPS against 1.7 for 1,024 in our measurements.
const accBlock = 128

// Accumulator gathers feature statistics batch by batch, as features come
// back from the device, in float64 and without keeping the features.
//
// It merges blocks of rows by Chan, Golub and LeVeque's pairwise update:
// each block's scatter about its own mean goes through BLAS Dsyrk, and a
// rank-one term corrects for the distance between the block's mean and
// the running one. Sums of squares about the mean, never raw second
// moments, so features with a large mean lose no precision to
// cancellation. The cost is N·Dim²/2 multiply-adds in gonum's Dsyrk, on
// one core, plus Dim²/2 per block: 10,000 vectors of 2,048 took 7.4 s
// (5.7 GFLOPS) on our shared 2-core test machine. It holds
// Dim²+(accBlock+2)·Dim float64s (36 MB at Dim 2048).
type Accumulator struct {
	dim  int
	n    int
	mean []float64
	m2   []float64 // sum of (x-mean)(x-mean)ᵀ, upper triangle, row-major
	blk  []float64 // one block of rows, centred on the block's mean
	bmu  []float64 // the block's mean
}

// NewAccumulator returns an empty Accumulator for vectors of dim values.
func NewAccumulator(dim int) (*Accumulator, error) {
	if dim < 1 {
		return nil, fmt.Errorf("quality: stats: feature dimension %d: %w", dim, ErrShape)
	}
	return &Accumulator{
		dim:  dim,
		mean: make([]float64, dim),
		m2:   make([]float64, dim*dim),
		blk:  make([]float64, accBlock*dim),
		bmu:  make([]float64, dim),
	}, nil
}

// N is the number of vectors added so far.
func (a *Accumulator) N() int { return a.n }

// Add folds in rows: whole vectors of Dim float32 values, one after
// another. A bad batch (a partial row, a NaN or infinity) is an error and
// leaves the Accumulator as it was.
func (a *Accumulator) Add(rows []float32) error {
	d := a.dim
	if len(rows)%d != 0 {
		return fmt.Errorf("quality: stats: %d values are not whole rows of %d: %w", len(rows), d, ErrShape)
	}
	if i := nonFinite32(rows); i >= 0 {
		return fmt.Errorf("quality: stats: row %d of the batch, value %d is %v: %w", i/d, i%d, rows[i], ErrNonFinite)
	}
	impl := blas64.Implementation()
	for len(rows) > 0 {
		b := min(len(rows)/d, accBlock)
		blk := a.blk[:b*d]
		clear(a.bmu)
		for r := range b {
			for j, v := range rows[r*d : (r+1)*d] {
				a.bmu[j] += float64(v)
			}
		}
		for j := range a.bmu {
			a.bmu[j] /= float64(b)
		}
		for r := range b {
			row, out := rows[r*d:(r+1)*d], blk[r*d:(r+1)*d]
			for j, v := range row {
				out[j] = float64(v) - a.bmu[j]
			}
		}
		// m2 += blkᵀ blk: the block's own scatter.
		impl.Dsyrk(blas.Upper, blas.Trans, d, b, 1, blk, d, 1, a.m2, d)
		// The means' gap δ adds δδᵀ·n·b/(n+b) to the merged scatter, and
		// moves the mean by δ·b/(n+b).
		n := float64(a.n)
		tot := n + float64(b)
		for j := range a.bmu {
			a.bmu[j] -= a.mean[j] // now δ
		}
		if a.n > 0 {
			impl.Dsyr(blas.Upper, d, n*float64(b)/tot, a.bmu, 1, a.m2, d)
		}
		for j, dj := range a.bmu {
			a.mean[j] += dj * float64(b) / tot
		}
		a.n += b
		rows = rows[b*d:]
	}
	return nil
}

// Stats returns the statistics of everything added so far; the
// Accumulator can go on taking rows. It needs at least 2 vectors.
func (a *Accumulator) Stats() (Stats, error) {
	if a.n < 2 {
		return Stats{}, fmt.Errorf("quality: stats: %d feature vectors, a covariance needs 2: %w", a.n, ErrTooFew)
	}
	d := a.dim
	s := Stats{N: a.n, Dim: d, Mu: make([]float64, d), Sigma: make([]float64, d*d)}
	copy(s.Mu, a.mean)
	inv := 1 / float64(a.n-1)
	for i := range d {
		for j := i; j < d; j++ {
			v := a.m2[i*d+j] * inv
			s.Sigma[i*d+j] = v
			s.Sigma[j*d+i] = v
		}
	}
	return s, nil
}

// nonFinite32 returns the index of the first NaN or infinity in v, or -1.
func nonFinite32(v []float32) int {
	for i, x := range v {
		// x-x is NaN exactly when x is NaN or infinite.
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// nonFinite64 is nonFinite32 for float64.
func nonFinite64(v []float64) int {
	for i, x := range v {
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// statsFormat is the "format" metadata of every file SaveStats writes;
// another number is a layout this code does not read.
const statsFormat = "vkgan-feature-stats-1"

// SaveStats writes s to path as safetensors, atomically (a crash leaves
// the old file or the new one): tensors "mu" (F64 [Dim]), "sigma" (F64
// [Dim, Dim]) and "n" (I64 scalar), and meta in the file's metadata beside
// "format", which is reserved. numpy reads it with scripts/
// safetensors_check.py's load_numpy, the safetensors package with
// safe_open.
func SaveStats(path string, s Stats, meta map[string]string) error {
	if err := s.check("save " + path); err != nil {
		return err
	}
	if _, ok := meta["format"]; ok {
		return fmt.Errorf("quality: save %s: metadata key \"format\" is reserved", path)
	}
	md := maps.Clone(meta)
	if md == nil {
		md = map[string]string{}
	}
	md["format"] = statsFormat
	ts := []safetensors.Tensor{
		{Name: "mu", DType: safetensors.F64, Shape: []int{s.Dim}, F64: s.Mu},
		{Name: "sigma", DType: safetensors.F64, Shape: []int{s.Dim, s.Dim}, F64: s.Sigma},
		{Name: "n", DType: safetensors.I64, Shape: []int{}, I64: []int64{int64(s.N)}},
	}
	if err := safetensors.WriteFile(path, ts, md); err != nil {
		return fmt.Errorf("quality: save statistics: %w", err)
	}
	return nil
}

// LoadStats reads statistics that SaveStats wrote, and the metadata it was
// given. A file that is not safetensors gives the safetensors package's
// errors; one that is, but not statistics, ErrFormat; statistics no
// covariance can have, the errors FID gives for them.
func LoadStats(path string) (Stats, map[string]string, error) {
	ts, md, err := safetensors.ReadFile(path)
	if err != nil {
		return Stats{}, nil, fmt.Errorf("quality: load statistics: %w", err)
	}
	bad := func(format string, args ...any) (Stats, map[string]string, error) {
		return Stats{}, nil, fmt.Errorf("quality: %s: %s: %w", path, fmt.Sprintf(format, args...), ErrFormat)
	}
	if md["format"] != statsFormat {
		return bad("format %q, want %q", md["format"], statsFormat)
	}
	delete(md, "format")
	byName := make(map[string]safetensors.Tensor, len(ts))
	for _, t := range ts {
		byName[t.Name] = t
	}
	mu, sigma, n := byName["mu"], byName["sigma"], byName["n"]
	switch {
	case len(ts) != 3:
		return bad("%d tensors, want mu, sigma and n", len(ts))
	case mu.DType != safetensors.F64 || len(mu.Shape) != 1:
		return bad("mu is %s %v, want F64 [dim]", mu.DType, mu.Shape)
	case sigma.DType != safetensors.F64 || len(sigma.Shape) != 2 || sigma.Shape[0] != mu.Shape[0] || sigma.Shape[1] != mu.Shape[0]:
		return bad("sigma is %s %v for mu %v, want F64 [dim, dim]", sigma.DType, sigma.Shape, mu.Shape)
	case n.DType != safetensors.I64 || len(n.I64) != 1 || len(n.Shape) != 0:
		return bad("n is %s %v, want an I64 scalar", n.DType, n.Shape)
	case n.I64[0] < 0 || n.I64[0] > math.MaxInt32:
		return bad("n is %d", n.I64[0])
	}
	s := Stats{N: int(n.I64[0]), Dim: mu.Shape[0], Mu: mu.F64, Sigma: sigma.F64}
	if err := s.check(path); err != nil {
		return Stats{}, nil, err
	}
	return s, md, nil
}

// Key says what reference statistics were computed from, so that a cached
// file is used only for the same data, size, preprocessing and feature
// extractor.
type Key struct {
	DataHash    string // the data set's contents
	Size        int    // images the statistics cover: Stats.N
	Mode        string // how images became features (resize, crop, channels)
	WeightsHash string // the feature extractor's weights
}

// Meta is k as file metadata, for SaveStats.
func (k Key) Meta() map[string]string {
	return map[string]string{
		"data_hash":    k.DataHash,
		"size":         strconv.Itoa(k.Size),
		"mode":         k.Mode,
		"weights_hash": k.WeightsHash,
	}
}

// Filename is the cache file's name for k: fidstats- and 16 hex digits of
// the SHA-256 of Meta as JSON with sorted keys, so that different keys
// never share a file.
func (k Key) Filename() string {
	// json.Marshal sorts map keys: the same Key always hashes the same.
	b, _ := json.Marshal(k.Meta())
	sum := sha256.Sum256(b)
	return fmt.Sprintf("fidstats-%x.safetensors", sum[:8])
}

// Check returns nil if meta, as LoadStats returns it, records k, and an
// error wrapping ErrStale that names the first field that differs if not.
func (k Key) Check(meta map[string]string) error {
	if e := k.mismatch(meta); e != "" {
		return fmt.Errorf("quality: cached statistics %s: %w", e, ErrStale)
	}
	return nil
}

// mismatch says how meta differs from k, or is empty.
func (k Key) mismatch(meta map[string]string) string {
	want := k.Meta()
	for _, f := range []string{"data_hash", "size", "mode", "weights_hash"} {
		got, ok := meta[f]
		if !ok {
			return "have no " + f
		}
		if got != want[f] {
			return fmt.Sprintf("have %s %q, want %q", f, got, want[f])
		}
	}
	return ""
}

// SaveCached writes s to dir under k.Filename(), with k in its metadata.
// s must cover k.Size samples.
func SaveCached(dir string, k Key, s Stats) error {
	if s.N != k.Size {
		return fmt.Errorf("quality: save statistics: %d samples for a key of size %d: %w", s.N, k.Size, ErrShape)
	}
	return SaveStats(filepath.Join(dir, k.Filename()), s, k.Meta())
}

// LoadCached reads the statistics SaveCached wrote for k. A missing file
// gives an error wrapping fs.ErrNotExist, one written for another key
// ErrStale: either way, compute them and SaveCached.
func LoadCached(dir string, k Key) (Stats, error) {
	path := filepath.Join(dir, k.Filename())
	s, md, err := LoadStats(path)
	if err != nil {
		return Stats{}, err
	}
	if e := k.mismatch(md); e != "" {
		return Stats{}, fmt.Errorf("quality: %s: statistics %s: %w", path, e, ErrStale)
	}
	if s.N != k.Size {
		return Stats{}, fmt.Errorf("quality: %s: %d samples, key says %d: %w", path, s.N, k.Size, ErrStale)
	}
	return s, nil
}
