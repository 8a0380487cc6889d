package quality

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
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
// one core, plus Dim²/2 per block: 10,000 vectors of 2,048 take 5 to 15 s
// (6 to 9 GFLOPS on our shared 2-core test machine). It holds
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
