package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// bnRef is the float64 training-mode batch norm: y, the per-channel mean,
// invstd and unbiased variance (biased when a channel holds one value).
func bnRef(x, gamma, beta []float64, n, c, hw int, eps float64) (y, mean, invstd, unbiased []float64) {
	y = make([]float64, len(x))
	mean = make([]float64, c)
	invstd = make([]float64, c)
	unbiased = make([]float64, c)
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		var s float64
		for i := 0; i < n; i++ {
			for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += v
			}
		}
		mu := s / m
		var sq float64
		for i := 0; i < n; i++ {
			for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				sq += (v - mu) * (v - mu)
			}
		}
		mean[ch] = mu
		invstd[ch] = 1 / math.Sqrt(sq/m+eps)
		unbiased[ch] = sq / m
		if m > 1 {
			unbiased[ch] = sq / (m - 1)
		}
		for i := 0; i < n; i++ {
			for j := (i*c + ch) * hw; j < (i*c+ch+1)*hw; j++ {
				y[j] = (x[j]-mu)*invstd[ch]*gamma[ch] + beta[ch]
			}
		}
	}
	return y, mean, invstd, unbiased
}

// bnBackwardRef is the analytic float64 backward of bnRef.
func bnBackwardRef(dy, x, gamma []float64, n, c, hw int, eps float64) (dx, dgamma, dbeta []float64) {
	_, mean, invstd, _ := bnRef(x, gamma, make([]float64, c), n, c, hw, eps)
	dx = make([]float64, len(x))
	dgamma = make([]float64, c)
	dbeta = make([]float64, c)
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		for i := 0; i < n; i++ {
			for j := (i*c + ch) * hw; j < (i*c+ch+1)*hw; j++ {
				dbeta[ch] += dy[j]
				dgamma[ch] += dy[j] * (x[j] - mean[ch]) * invstd[ch]
			}
		}
		for i := 0; i < n; i++ {
			for j := (i*c + ch) * hw; j < (i*c+ch+1)*hw; j++ {
				xhat := (x[j] - mean[ch]) * invstd[ch]
				dx[j] = gamma[ch] * invstd[ch] * (dy[j] - dbeta[ch]/m - xhat*dgamma[ch]/m)
			}
		}
	}
	return dx, dgamma, dbeta
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func TestBatchNorm(t *testing.T) {
	d := newTestDevice(t)
	const eps, momentum = 1e-5, 0.1
	for _, tc := range []struct {
		name   string
		shape  []int
		offset float32 // added to x, to check the statistics' numerics
		fd     int     // elements of x checked by finite differences (0: all)
	}{
		{"N1xC3", []int{1, 3}, 0, 0},
		{"N1xC3x1x1", []int{1, 3, 1, 1}, 0, 0},
		{"N5xC1", []int{5, 1}, 0, 0},
		{"N7xC3", []int{7, 3}, 0, 0},
		{"N128xC400_toy_large", []int{128, 400}, 0, 8},  // lane per channel
		{"N200xC67_offset100", []int{200, 67}, 100, 10}, // lane per channel, 2 workgroups with a ragged end
		{"N2100xC3", []int{2100, 3}, 0, 10},             // too many rows for a lane: workgroup per channel
		{"N1xC1x3x5", []int{1, 1, 3, 5}, 0, 0},
		{"N2xC3x5x5", []int{2, 3, 5, 5}, 0, 0},
		{"N4xC3x2x2", []int{4, 3, 2, 2}, 0, 0},
		{"N3xC1x7x7", []int{3, 1, 7, 7}, 0, 40},
		{"N16xC4x9x9_offset1000", []int{16, 4, 9, 9}, 1000, 20},
		{"N8xC2x16x16_offset100", []int{8, 2, 16, 16}, 100, 20},
		{"N3xC2x2x3", []int{3, 2, 2, 3}, 0, 0},              // even planes of 6
		{"N5xC3x3x7_offset100", []int{5, 3, 3, 7}, 100, 20}, // odd planes with an offset
		{"N64xC128x16x16", []int{64, 128, 16, 16}, 0, 6},
		{"N8xC64x32x32", []int{8, 64, 32, 32}, 0, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := newRand(uint64(len(tc.name)))
			n, c := tc.shape[0], tc.shape[1]
			hw := 1
			if len(tc.shape) == 4 {
				hw = tc.shape[2] * tc.shape[3]
			}
			size := n * c * hw
			xs := randSlice(rng, size)
			for i := range xs {
				xs[i] = xs[i]*2 + tc.offset
			}
			gs, bs, dys := randSlice(rng, c), randSlice(rng, c), randSlice(rng, size)
			rm0, rv0 := randSlice(rng, c), randSlice(rng, c)
			for i := range rv0 {
				rv0[i] = 1 + rv0[i]*0.5
			}
			x, gamma, beta := tensorOf(t, d, xs, tc.shape...), tensorOf(t, d, gs, c), tensorOf(t, d, bs, c)
			rm, rv := tensorOf(t, d, rm0, c), tensorOf(t, d, rv0, c)
			y, sm, si := zeros(t, d, tc.shape...), zeros(t, d, c), zeros(t, d, c)
			dy, dx, dg, db := tensorOf(t, d, dys, tc.shape...), zeros(t, d, tc.shape...), zeros(t, d, c), zeros(t, d, c)
			yi := zeros(t, d, tc.shape...)
			var kernels []string
			run(t, d, func(r *Recorder) error {
				r.EnableProfile()
				defer func() { kernels = r.profNames }()
				if err := r.BatchNormTrain(y, x, gamma, beta, rm, rv, sm, si, momentum, eps); err != nil {
					return err
				}
				if err := r.BatchNormBackward(dx, dg, db, dy, x, gamma, sm, si); err != nil {
					return err
				}
				return r.BatchNormInference(yi, x, gamma, beta, rm, rv, eps)
			})

			// Each shape takes the variant meant for it.
			variant := ""
			switch {
			case hw == 1 && n <= bnColsMaxRows:
				variant = "_cols"
			case hw%2 == 0 && d.info.Limits.ShaderInt64:
				variant = "_w2"
			}
			require.Equal(t, []string{"bn_train" + variant, "bn_backward" + variant, "bn_infer"}, kernels)

			x64, g64, b64 := to64(xs), to64(gs), to64(bs)
			wantY, mean, invstd, unb := bnRef(x64, g64, b64, n, c, hw, eps)
			// fp32 statistics of values near the offset lose about
			// offset*2^-24 per value, so the tolerance scales with it.
			tol := 2e-5 * (1 + float64(tc.offset))
			assertClose(t, "y", wantY, download(t, y), 1e-4, tol)
			assertClose(t, "saveMean", mean, download(t, sm), 1e-5, tol)
			assertClose(t, "saveInvStd", invstd, download(t, si), 1e-4, 1e-6)
			wantRM, wantRV := make([]float64, c), make([]float64, c)
			for ch := range wantRM {
				wantRM[ch] = (1-momentum)*float64(rm0[ch]) + momentum*mean[ch]
				wantRV[ch] = (1-momentum)*float64(rv0[ch]) + momentum*unb[ch]
			}
			assertClose(t, "runMean", wantRM, download(t, rm), 1e-5, tol)
			assertClose(t, "runVar", wantRV, download(t, rv), 1e-4, 1e-6)

			// Inference with the updated running statistics.
			wantYi := make([]float64, size)
			for i := range wantYi {
				ch := (i / hw) % c
				wantYi[i] = (x64[i]-wantRM[ch])/math.Sqrt(wantRV[ch]+eps)*g64[ch] + b64[ch]
			}
			assertClose(t, "y inference", wantYi, download(t, yi), 1e-4, tol*10)

			// Backward: GPU against the analytic float64 backward, which is
			// itself checked by central differences of bnRef on L = sum(y*dy).
			dy64 := to64(dys)
			wantDx, wantDg, wantDb := bnBackwardRef(dy64, x64, g64, n, c, hw, eps)
			scale := maxAbs(wantDx)
			assertClose(t, "dx", wantDx, download(t, dx), 1e-4, 1e-4*scale+1e-6)
			assertClose(t, "dgamma", wantDg, download(t, dg), 1e-4, 1e-4*maxAbs(wantDg)+1e-6)
			assertClose(t, "dbeta", wantDb, download(t, db), 1e-4, 1e-4*maxAbs(wantDb)+1e-6)

			loss := func(x, g, b []float64) float64 {
				y, _, _, _ := bnRef(x, g, b, n, c, hw, eps)
				var l float64
				for i := range y {
					l += y[i] * dy64[i]
				}
				return l
			}
			const h = 1e-5
			fd := func(v []float64, i int, f func() float64) float64 {
				old := v[i]
				v[i] = old + h
				lp := f()
				v[i] = old - h
				lm := f()
				v[i] = old
				return (lp - lm) / (2 * h)
			}
			f := func() float64 { return loss(x64, g64, b64) }
			count := size
			if tc.fd > 0 {
				count = tc.fd
			}
			for k := 0; k < count; k++ {
				i := k
				if tc.fd > 0 {
					i = rng.IntN(size)
				}
				got := fd(x64, i, f)
				require.InDelta(t, got, wantDx[i], 1e-5*(1+math.Abs(got))*(1+float64(tc.offset)), "finite difference dL/dx[%d]", i)
			}
			for ch := 0; ch < c && ch < 8; ch++ {
				require.InDelta(t, fd(g64, ch, f), wantDg[ch], 1e-5*(1+math.Abs(wantDg[ch])), "finite difference dL/dgamma[%d]", ch)
				require.InDelta(t, fd(b64, ch, f), wantDb[ch], 1e-5*(1+math.Abs(wantDb[ch])), "finite difference dL/dbeta[%d]", ch)
			}
		})
	}
}

func TestBatchNormReplay(t *testing.T) {
	// Replaying one recording updates the running statistics each time.
	d := newTestDevice(t)
	const n, c, hw = 4, 3, 4
	rng := newRand(3)
	xs := randSlice(rng, n*c*hw)
	x := tensorOf(t, d, xs, n, c, 2, 2)
	gamma, beta := tensorOf(t, d, []float32{1, 1, 1}, c), zeros(t, d, c)
	rm, rv := zeros(t, d, c), tensorOf(t, d, []float32{1, 1, 1}, c)
	y, sm, si := zeros(t, d, n, c, 2, 2), zeros(t, d, c), zeros(t, d, c)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.NoError(t, r.BatchNormTrain(y, x, gamma, beta, rm, rv, sm, si, 0.5, 1e-5))
	for i := 0; i < 3; i++ {
		require.NoError(t, r.Submit())
	}
	_, mean, _, unb := bnRef(to64(xs), []float64{1, 1, 1}, []float64{0, 0, 0}, n, c, hw, 1e-5)
	wantRM, wantRV := make([]float64, c), make([]float64, c)
	for ch := range wantRM {
		wantRM[ch] = mean[ch] * (1 - 0.125) // three updates from 0 with momentum 0.5
		wantRV[ch] = 0.125 + unb[ch]*(1-0.125)
	}
	assertClose(t, "runMean", wantRM, download(t, rm), 1e-5, 1e-6)
	assertClose(t, "runVar", wantRV, download(t, rv), 1e-5, 1e-6)
}

func TestBatchNormBadInput(t *testing.T) {
	d := newTestDevice(t)
	x := zeros(t, d, 2, 3, 4, 4)
	c3, c2 := zeros(t, d, 3), zeros(t, d, 2)
	y := zeros(t, d, 2, 3, 4, 4)
	y3 := zeros(t, d, 2, 3, 4)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.Error(t, r.BatchNormTrain(y, nil, c3, c3, c3, c3, c3, c3, 0.1, 1e-5))
	require.Error(t, r.BatchNormTrain(y3, y3, c3, c3, c3, c3, c3, c3, 0.1, 1e-5), "rank 3")
	require.Error(t, r.BatchNormTrain(y, x, c2, c3, c3, c3, c3, c3, 0.1, 1e-5), "gamma size")
	require.Error(t, r.BatchNormTrain(y, x, c3, c3, c3, nil, c3, c3, 0.1, 1e-5), "nil runVar")
	require.Error(t, r.BatchNormTrain(x, x, c3, c3, c3, c3, c3, c3, 0.1, 1e-5), "y aliases x")
	require.Error(t, r.BatchNormTrain(y, x, c3, c3, c3, c3, c3, c3, 1.5, 1e-5), "momentum")
	require.Error(t, r.BatchNormTrain(y, x, c3, c3, c3, c3, c3, c3, 0.1, 0), "eps")
	require.Error(t, r.BatchNormTrain(y, x, c3, c3, c3, c3, c3, c3, float32(math.NaN()), 1e-5), "NaN momentum")
	require.Error(t, r.BatchNormBackward(y, c3, c3, y, x, c3, c3, c3), "dx aliases dy")
	require.Error(t, r.BatchNormBackward(y, c2, c3, x, x, c3, c3, c3), "dgamma size")
	require.Error(t, r.BatchNormBackward(y3, c3, c3, x, x, c3, c3, c3), "dx shape")
	require.Error(t, r.BatchNormInference(y3, x, c3, c3, c3, c3, 1e-5), "y shape")
	require.Error(t, r.BatchNormInference(y, x, c3, c3, c3, c2, 1e-5), "runVar size")
	require.Error(t, r.Submit(), "sticky error")
}
