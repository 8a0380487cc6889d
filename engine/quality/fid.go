package quality

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// FIDResult is a Fréchet distance and what the caller should print with it.
type FIDResult struct {
	// FID is |mu_a - mu_b|² + Tr(Σa) + Tr(Σb) - 2 Tr(sqrt(Σa Σb)). When the
	// two sets have the same statistics it can come out a rounding error
	// below zero, as pytorch-fid's can; it is not clamped.
	FID float64
	// Warning is empty, or says why the value deserves less trust: a set
	// with N <= Dim samples has a singular covariance. FID's reference
	// code (TTUR) and pytorch-fid's README ask for more samples than
	// dimensions; pytorch-fid's code prints nothing, so the caller should.
	// (FID is also biased upwards at small N: values at different N do
	// not compare.)
	Warning string
}

// FID returns the Fréchet distance between the Gaussians of two feature
// sets: pytorch-fid's and torch-fidelity's FID, in float64. The sets must
// have the same Dim and at least 2 samples each; Sigma must be a
// covariance (symmetric positive semidefinite), as every Stats from an
// Accumulator or numpy.cov is.
//
// Its cost is a Cholesky factorisation (Dim³/6 multiply-adds), two
// triangular products (Dim³/2 each) and a symmetric eigensolve for
// eigenvalues only (Dim³·2/3, half of it memory-bound matrix-vector
// products), all gonum on one core: at Dim 2048, 16 to 21 s on our shared
// 2-core test machine, most of it the eigensolve. It holds four Dim×Dim
// float64 matrices (134 MB at Dim 2048).
func FID(a, b Stats) (FIDResult, error) {
	if err := a.check("fid: set a"); err != nil {
		return FIDResult{}, err
	}
	if err := b.check("fid: set b"); err != nil {
		return FIDResult{}, err
	}
	if a.Dim != b.Dim {
		return FIDResult{}, fmt.Errorf("quality: fid: set a has dimension %d, set b %d: %w", a.Dim, b.Dim, ErrShape)
	}
	d := a.Dim
	var dist float64
	for i := range d {
		diff := a.Mu[i] - b.Mu[i]
		dist += diff * diff
	}
	for i := range d {
		dist += a.Sigma[i*d+i] + b.Sigma[i*d+i]
	}
	tr, err := traceSqrtProduct(a.Sigma, b.Sigma, d)
	if err != nil {
		return FIDResult{}, err
	}
	dist -= 2 * tr

	var r FIDResult
	r.FID = dist
	switch {
	case a.Singular() && b.Singular():
		r.Warning = fmt.Sprintf("fid: both covariances are singular (%d and %d samples for %d dimensions): FID needs more samples than dimensions to be reliable", a.N, b.N, d)
	case a.Singular():
		r.Warning = fmt.Sprintf("fid: the first covariance is singular (%d samples for %d dimensions): FID needs more samples than dimensions to be reliable", a.N, d)
	case b.Singular():
		r.Warning = fmt.Sprintf("fid: the second covariance is singular (%d samples for %d dimensions): FID needs more samples than dimensions to be reliable", b.N, d)
	}
	return r, nil
}

// lapackEps is LAPACK's relative machine precision for float64 (dlamch
// 'E', 2⁻⁵³), the ε of dpstrf's default tolerance.
const lapackEps = 1.0 / (1 << 53)

// traceSqrtProduct returns Tr(sqrt(S1 S2)) for covariances S1 and S2
// (d×d, row-major).
//
// pytorch-fid takes scipy.linalg.sqrtm(S1 @ S2) and sums its diagonal.
// The trace of a matrix is the sum of its eigenvalues, and the principal
// square root that sqrtm returns has as eigenvalues the principal square
// roots of S1 S2's, so that value is Σ sqrt(λ) over the eigenvalues λ of
// S1 S2 (torch-fidelity sums exactly this, from numpy.linalg.eigvals).
// For a factor S1 = GᵀG, S1 S2 = Gᵀ(G S2), and XY and YX have the same
// nonzero eigenvalues, so the λ are also the eigenvalues of G S2 Gᵀ: a
// symmetric positive semidefinite matrix, whose eigenvalues are real and
// non-negative and come from a symmetric eigensolver, where sqrtm works on
// a nonsymmetric product and can return complex parts or fail. With G =
// sqrt(S1) this is sqrt(S1) S2 sqrt(S1); we take G from S1's Cholesky
// factorisation instead, because sqrt(S1) needs S1's eigenvectors, which
// gonum's QR-based eigensolver took 3 minutes to find at Dim 2048, against
// under a second for Cholesky.
//
// The Cholesky factorisation pivots (LAPACK's dpstrf), so a singular S1
// (too few samples, a channel that is always zero) gives G with as many
// rows as S1's rank: it stops once the largest remaining pivot is below
// Dim·ε·max(diag S1), the part of S1 that rounding leaves undetermined.
// Eigenvalues of G S2 Gᵀ below rank·ε·(its largest) count as zero for the
// same reason, as one clamps an eigendecomposition's tiny negative
// eigenvalues: a singular S2 leaves eigenvalues that should be 0 at ±ε
// times the largest, and each would add its square root, ~1e-8 of the
// largest root, to the trace. pytorch-fid instead retries sqrtm with 1e-6
// added to both diagonals when the product is singular enough to make it
// fail; that changes the distance itself (by 4e-4 of it in our
// dead-channel fixture), so we match its value where it needs no offset
// and the exact one where it does.
func traceSqrtProduct(s1, s2 []float64, d int) (float64, error) {
	// U: Pᵀ S1 P = UᵀU, so S1 = GᵀG with G = U Pᵀ.
	u := blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: make([]float64, d*d)}
	copy(u.Data, s1)
	piv := make([]int, d)
	_, rank, _ := lapack64.Pstrf(u, piv, -1, make([]float64, 2*d))
	if rank == 0 {
		return 0, nil // S1 = 0
	}
	// Only the leading rank rows of U are the factor, and only their
	// upper triangle: clear the rest so that Dtrmm multiplies by G.
	for i := range d {
		row := u.Data[i*d : (i+1)*d]
		if i >= rank {
			clear(row)
		} else {
			clear(row[:i])
		}
	}
	// c = Pᵀ S2 P, then U c Uᵀ = G S2 Gᵀ (zero outside the leading
	// rank×rank block). Multiplying from the left twice, with a transpose
	// between (U (U c)ᵀ, c symmetric), is gonum's faster Dtrmm: 3 s each
	// against 8 s for the right-hand side at Dim 2048.
	c := make([]float64, d*d)
	for i := range d {
		for j := range d {
			c[i*d+j] = s2[piv[i]*d+piv[j]]
		}
	}
	impl := blas64.Implementation()
	impl.Dtrmm(blas.Left, blas.Upper, blas.NoTrans, blas.NonUnit, d, d, 1, u.Data, d, c, d)
	for i := range d {
		for j := i + 1; j < d; j++ {
			c[i*d+j], c[j*d+i] = c[j*d+i], c[i*d+j]
		}
	}
	impl.Dtrmm(blas.Left, blas.Upper, blas.NoTrans, blas.NonUnit, d, d, 1, u.Data, d, c, d)

	m := mat.NewSymDense(rank, nil)
	for i := range rank {
		for j := i; j < rank; j++ {
			m.SetSym(i, j, c[i*d+j])
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(m, false) {
		// LAPACK's QR iteration gives up after 30·rank sweeps, which a
		// finite symmetric matrix should never need.
		return 0, fmt.Errorf("quality: fid: the %d×%d eigenvalue problem did not converge", rank, rank)
	}
	vals := eig.Values(nil) // ascending
	cut := float64(rank) * lapackEps * max(vals[len(vals)-1], 0)
	var tr float64
	for _, l := range vals {
		if l > cut {
			tr += math.Sqrt(l)
		}
	}
	return tr, nil
}
