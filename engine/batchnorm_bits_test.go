package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// bnSpan is the number of lanes whose partial sums batch norm's
// per-channel reduction merges, whatever the workgroup that computes them:
// changing it, or the order of the merges, changes the statistics' last
// bits, and a checkpoint written before no longer resumes bit for bit.
const bnSpan = 256

// bnLaneWords calls visit with the values of channel ch that lane v of
// bnSpan visits, in order: one float, or a pair when wide (the w2 kernels,
// even planes), every bnSpan-th word of the channel.
func bnLaneWords(x []float32, n, c, hw, ch, v int, wide bool, visit func(a, b float32)) {
	words, per := hw, 1
	if wide {
		words, per = hw/2, 2
	}
	for f := v; f < n*words; f += bnSpan {
		i := (f/words*c+ch)*hw + f%words*per
		if wide {
			visit(x[i], x[i+1])
		} else {
			visit(x[i], 0)
		}
	}
}

// bnTreeStats is bn_train.comp's statistics in float32, operation for
// operation as lavapipe compiles them: each lane's shifted sums as (count,
// mean, M2), then Chan's merges in a tree over the lanes. Mesa's NIR
// reassociates sumSq += a*a + b*b into (sumSq + a*a) + b*b, and not
// sum += a + b. It returns each channel's mean, M2 (the variances'
// numerator) and count.
func bnTreeStats(x []float32, n, c, hw int, wide bool) (mean, m2, count []float32) {
	mean, m2, count = make([]float32, c), make([]float32, c), make([]float32, c)
	for ch := range c {
		var cnt, mu, sq [bnSpan]float32
		for v := range bnSpan {
			var k, sum, sumSq float32
			first := true
			bnLaneWords(x, n, c, hw, ch, v, wide, func(a, b float32) {
				if first {
					k, first = a, false
				}
				if wide {
					da, db := a-k, b-k
					sum += da + db
					sumSq = sumSq + float32(da*da) + float32(db*db)
					cnt[v] += 2
				} else {
					d := a - k
					sum += d
					sumSq += float32(d * d)
					cnt[v]++
				}
			})
			if cnt[v] > 0 {
				mu[v] = sum / cnt[v]
				sq[v] = max(sumSq-float32(sum*mu[v]), 0)
			}
			mu[v] += k
		}
		for st := bnSpan / 2; st > 0; st /= 2 {
			for l := range st {
				if cnt[l+st] > 0 {
					na, nb := cnt[l], cnt[l+st]
					nab := na + nb
					d := mu[l+st] - mu[l]
					mu[l] += float32(d * float32(nb/nab))
					sq[l] += sq[l+st] + float32(float32(float32(d*d)*float32(na/nab))*nb)
					cnt[l] = nab
				}
			}
		}
		mean[ch], m2[ch], count[ch] = mu[0], max(sq[0], 0), cnt[0]
	}
	return mean, m2, count
}

// bnTreeGrads is bn_backward.comp's sums (no fused activation) in float32
// as lavapipe compiles them (dy*(x - mean) pairs reassociated as in
// bnTreeStats): per lane sums of dy and dy*(x - mean), the second scaled by
// invstd, then a tree of additions. It returns dbeta and dgamma.
func bnTreeGrads(dy, x, mean, invstd []float32, n, c, hw int, wide bool) (dbeta, dgamma []float32) {
	dbeta, dgamma = make([]float32, c), make([]float32, c)
	for ch := range c {
		var sDy, sDyx [bnSpan]float32
		for v := range bnSpan {
			var gs, xs []float32
			bnLaneWords(dy, n, c, hw, ch, v, wide, func(a, b float32) { gs = append(gs, a, b) })
			bnLaneWords(x, n, c, hw, ch, v, wide, func(a, b float32) { xs = append(xs, a, b) })
			var sumDy, sumDyx float32
			for i := 0; i < len(gs); i += 2 {
				ga, xa := gs[i], xs[i]
				if wide {
					gb, xb := gs[i+1], xs[i+1]
					sumDy += ga + gb
					sumDyx = sumDyx + float32(ga*(xa-mean[ch])) + float32(gb*(xb-mean[ch]))
				} else {
					sumDy += ga
					sumDyx += float32(ga * (xa - mean[ch]))
				}
			}
			sDy[v], sDyx[v] = sumDy, float32(sumDyx*invstd[ch])
		}
		for st := bnSpan / 2; st > 0; st /= 2 {
			for l := range st {
				sDy[l] += sDy[l+st]
				sDyx[l] += sDyx[l+st]
			}
		}
		dbeta[ch], dgamma[ch] = sDy[0], sDyx[0]
	}
	return dbeta, dgamma
}

// TestBatchNormStatisticsBits holds the batch-norm kernels to the exact
// float32 operations of the 256-lane reduction that written checkpoints
// were trained with (TestResumeV1Checkpoint checks one small model end to
// end; this checks the kernels on model and odd shapes, one float and a
// float pair a load): the mean, the running estimates, dbeta and dgamma
// must have the same bits. The emulation is of lavapipe's compiled
// arithmetic; a GPU's compiler may contract or reassociate otherwise.
func TestBatchNormStatisticsBits(t *testing.T) {
	d := newTestDevice(t)
	if d.class != ClassCPU {
		t.Skipf("%s: the float32 emulation is of lavapipe's compiled arithmetic", d.Info().Name)
	}
	for _, s := range []struct{ n, c, h, w int }{
		{64, 512, 4, 4}, {64, 64, 8, 8}, {64, 16, 32, 32}, // the DCGAN's planes
		{3, 5, 7, 7}, {2, 3, 5, 6}, {2, 8, 4, 4}, {1, 2, 30, 30}, {5, 3, 1, 2}, // odd planes, lanes left empty
	} {
		t.Run(fmt.Sprintf("%dx%dx%dx%d", s.n, s.c, s.h, s.w), func(t *testing.T) {
			n, c, hw := s.n, s.c, s.h*s.w
			rng := newRand(uint64(n*c + hw))
			x, dy := randSlice(rng, n*c*hw), randSlice(rng, n*c*hw)
			for i := range x {
				x[i] = 3 + 2*x[i] // a mean far from 0, as the shift is for
			}
			gamma, beta, runMean := randSlice(rng, c), randSlice(rng, c), randSlice(rng, c)
			runVar := make([]float32, c)
			for i := range runVar {
				runVar[i] = 1 + float32(i)/8
			}
			shape := []int{n, c, s.h, s.w}
			xt, dyt := tensorOf(t, d, x, shape...), tensorOf(t, d, dy, shape...)
			gt, bt := tensorOf(t, d, gamma, c), tensorOf(t, d, beta, c)
			rm, rv := tensorOf(t, d, append([]float32(nil), runMean...), c), tensorOf(t, d, runVar, c)
			sm, si := tensorOf(t, d, make([]float32, c), c), tensorOf(t, d, make([]float32, c), c)
			y, dx := tensorOf(t, d, make([]float32, n*c*hw), shape...), tensorOf(t, d, make([]float32, n*c*hw), shape...)
			dg, db := tensorOf(t, d, make([]float32, c), c), tensorOf(t, d, make([]float32, c), c)
			const momentum = 0.1
			require.NoError(t, d.Run(func(r *Recorder) error {
				if err := r.BatchNormTrain(y, xt, gt, bt, rm, rv, sm, si, momentum, 1e-5); err != nil {
					return err
				}
				return r.BatchNormBackward(dx, dg, db, dyt, xt, gt, sm, si)
			}))
			wide := hw%2 == 0 && d.info.Limits.ShaderInt64
			mean, m2, count := bnTreeStats(x, n, c, hw, wide)
			gotMean, gotInvStd := download(t, sm), download(t, si)
			gotRM, gotRV := download(t, rm), download(t, rv)
			for ch := range c {
				unbiased := m2[ch] / count[ch]
				if count[ch] > 1 {
					unbiased = m2[ch] / (count[ch] - 1)
				}
				wantRM := float32((1-momentum)*runMean[ch]) + float32(momentum*mean[ch])
				wantRV := float32((1-momentum)*runVar[ch]) + float32(momentum*unbiased)
				require.Equal(t, math.Float32bits(mean[ch]), math.Float32bits(gotMean[ch]), "channel %d mean %g, kernel %g", ch, mean[ch], gotMean[ch])
				require.Equal(t, math.Float32bits(wantRM), math.Float32bits(gotRM[ch]), "channel %d running mean", ch)
				require.Equal(t, math.Float32bits(wantRV), math.Float32bits(gotRV[ch]), "channel %d running variance", ch)
			}
			wantDB, wantDG := bnTreeGrads(dy, x, gotMean, gotInvStd, n, c, hw, wide)
			gotDB, gotDG := download(t, db), download(t, dg)
			for ch := range c {
				require.Equal(t, math.Float32bits(wantDB[ch]), math.Float32bits(gotDB[ch]), "channel %d dbeta %g, kernel %g", ch, wantDB[ch], gotDB[ch])
				require.Equal(t, math.Float32bits(wantDG[ch]), math.Float32bits(gotDG[ch]), "channel %d dgamma %g, kernel %g", ch, wantDG[ch], gotDG[ch])
			}
		})
	}
}
