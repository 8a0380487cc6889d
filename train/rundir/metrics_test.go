package rundir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testMetric(step int) Metric {
	return Metric{
		Step:         step,
		Epoch:        float64(step) / 60,
		LossD:        float64(float32(1.38 - 0.0001*float64(step))),
		LossG:        float64(float32(0.69 + 0.0001*float64(step))),
		DX:           float64(float32(0.5)),
		DGZ1:         float64(float32(0.45)),
		DGZ2:         float64(float32(0.41)),
		ImagesPerSec: 812.5,
		Elapsed:      float64(step) * 0.0789,
	}
}

func TestMetricJSON(t *testing.T) {
	t.Parallel()
	m := Metric{
		Step: 50, Epoch: 0.8,
		LossD: float64(float32(1.3862)), LossG: float64(float32(0.6931)),
		DX: 0.5, DGZ1: 0, DGZ2: float64(float32(1e-7)),
		ImagesPerSec: 812.25, Elapsed: 3.9,
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	// float32 values print short; the line is the documented form.
	assert.Equal(t, `{"step":50,"epoch":0.8,"loss_d":1.3862,"loss_g":0.6931,"d_x":0.5,"d_g_z1":0,"d_g_z2":1e-07,"images_per_sec":812.25,"elapsed":3.9}`, string(b))

	var got Metric
	require.NoError(t, json.Unmarshal(b, &got))
	assertSameMetrics(t, []Metric{m}, []Metric{got})
	assert.Equal(t, float32(m.LossD), float32(got.LossD))
	assert.Equal(t, m.Epoch, got.Epoch)

	// Non-finite values become null and read back as NaN.
	m.LossD, m.LossG, m.DX = math.NaN(), math.Inf(1), math.Inf(-1)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"loss_d":null,"loss_g":null,"d_x":null`)
	require.NoError(t, json.Unmarshal(b, &got))
	assert.True(t, math.IsNaN(got.LossD))
	assert.True(t, math.IsNaN(got.LossG))
	assert.True(t, math.IsNaN(got.DX))
	assert.Equal(t, 50, got.Step)

	// Missing values are NaN, unknown keys are ignored, the step is needed.
	require.NoError(t, json.Unmarshal([]byte(`{"step":7,"loss_d":1,"lr":0.1}`), &got))
	assert.Equal(t, 7, got.Step)
	assert.Equal(t, 1.0, got.LossD)
	assert.True(t, math.IsNaN(got.LossG))
	assert.Error(t, json.Unmarshal([]byte(`{"loss_d":1}`), &got))
	assert.Error(t, json.Unmarshal([]byte(`{"step":"one"}`), &got))

	// Every finite float64 round-trips: exactly, or through float32 when
	// it is one.
	for _, v := range []float64{0.1, 1.0 / 3, 1e21, 1e-300, -2.5e-7, math.MaxFloat64, float64(float32(0.1))} {
		m := Metric{Step: 1, LossD: v}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		var got Metric
		require.NoError(t, json.Unmarshal(b, &got), string(b))
		if float64(float32(v)) == v {
			assert.Equal(t, float32(v), float32(got.LossD), string(b))
		} else {
			assert.Equal(t, v, got.LossD, string(b))
		}
	}
}

func TestMetricsLogAppendRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), MetricsFile)
	l, err := OpenMetricsLog(path)
	require.NoError(t, err)
	var want []Metric
	for step := 50; step <= 500; step += 50 {
		m := testMetric(step)
		want = append(want, m)
		require.NoError(t, l.Append(m))
	}
	require.NoError(t, l.Sync())
	// Lines are on disk before Close.
	got, err := ReadMetrics(path)
	require.NoError(t, err)
	assertSameMetrics(t, want, got)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice")
	assert.Error(t, l.Append(testMetric(550)), "Append after Close")
	var nilLog *MetricsLog
	assert.NoError(t, nilLog.Close())

	// Reopening appends.
	l, err = OpenMetricsLog(path)
	require.NoError(t, err)
	require.NoError(t, l.Append(testMetric(550)))
	require.NoError(t, l.Close())
	got, err = ReadMetrics(path)
	require.NoError(t, err)
	assertSameMetrics(t, append(want, testMetric(550)), got)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, 11, strings.Count(string(data), "\n"))
}

func TestMetricsTornLine(t *testing.T) {
	t.Parallel()
	line := func(step int) string {
		b, _ := json.Marshal(testMetric(step))
		return string(b) + "\n"
	}
	whole := line(50) + line(100)
	for _, tc := range []struct {
		name, content string
		want          []int // steps read
	}{
		{"empty", "", nil},
		{"clean", whole, []int{50, 100}},
		{"torn", whole + line(150)[:40], []int{50, 100}},
		{"torn first line", line(50)[:10], nil},
		{"unterminated but whole", whole + strings.TrimSuffix(line(150), "\n"), []int{50, 100, 150}},
		{"blank lines", "\n" + line(50) + "  \n" + line(100), []int{50, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), MetricsFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			ms, err := ReadMetrics(path)
			require.NoError(t, err)
			assert.Equal(t, tc.want, steps(ms))

			// Opening the log repairs the tail, so the next line stands alone.
			l, err := OpenMetricsLog(path)
			require.NoError(t, err)
			require.NoError(t, l.Append(testMetric(1000)))
			require.NoError(t, l.Close())
			ms, err = ReadMetrics(path)
			require.NoError(t, err)
			assert.Equal(t, append(tc.want, 1000), steps(ms))
		})
	}

	t.Run("long garbage tail", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), MetricsFile)
		require.NoError(t, os.WriteFile(path, []byte(line(50)+strings.Repeat("x", 100_000)), 0o644))
		l, err := OpenMetricsLog(path)
		require.NoError(t, err)
		require.NoError(t, l.Close())
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, line(50), string(data))
	})
}

func TestReadMetricsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := ReadMetrics(filepath.Join(dir, "missing.jsonl"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	// A bad line that is not the last is corruption, not a torn write.
	path := filepath.Join(dir, MetricsFile)
	b, _ := json.Marshal(testMetric(50))
	require.NoError(t, os.WriteFile(path, []byte("garbage\n"+string(b)+"\n"), 0o644))
	_, err = ReadMetrics(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "line 1")

	_, err = OpenMetricsLog(filepath.Join(dir, "no", "dir", MetricsFile))
	assert.Error(t, err)
}

func TestTruncateMetricsAfter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, MetricsFile)

	// Nothing to do for a run that never logged.
	bad, err := TruncateMetricsAfter(path, 100)
	require.NoError(t, err)
	require.Zero(t, bad)
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist)

	l, err := OpenMetricsLog(path)
	require.NoError(t, err)
	for step := 50; step <= 300; step += 50 {
		require.NoError(t, l.Append(testMetric(step)))
	}
	require.NoError(t, l.Close())
	// A crash tore a line after the last checkpoint.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"step":350,"epo`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	bad, err = TruncateMetricsAfter(path, 200)
	require.NoError(t, err)
	require.Equal(t, 1, bad, "the torn line")
	ms, err := ReadMetrics(path)
	require.NoError(t, err)
	assert.Equal(t, []int{50, 100, 150, 200}, steps(ms))
	assertSameMetrics(t, []Metric{testMetric(200)}, ms[3:])

	// Nothing after the step: the file is left alone.
	st1, err := os.Stat(path)
	require.NoError(t, err)
	_, err = TruncateMetricsAfter(path, 1000)
	require.NoError(t, err)
	st2, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, st1.ModTime(), st2.ModTime())
	assert.True(t, os.SameFile(st1, st2), "rewritten although nothing changed")

	_, err = TruncateMetricsAfter(path, 0)
	require.NoError(t, err)
	ms, err = ReadMetrics(path)
	require.NoError(t, err)
	assert.Empty(t, ms)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

// TestTruncateMetricsRepairsTornLines: lines torn in the middle of the file
// (two writers before runs were locked glued one line onto another, a crash
// left garbage) are dropped with a count, not fatal to a resume.
func TestTruncateMetricsRepairsTornLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), MetricsFile)
	line := func(step int) string {
		b, err := json.Marshal(testMetric(step))
		require.NoError(t, err)
		return string(b)
	}
	glued := line(20)
	glued = glued[:len(glued)-3] + line(22) // ..."elapsed":1.02{"step":22,...}
	content := line(10) + "\n" + glued + "\n" + "garbage\n\n" + line(30) + "\n" + line(40) + "\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	_, err := ReadMetrics(path)
	require.Error(t, err, "a reader still reports the damage")

	bad, err := TruncateMetricsAfter(path, 30)
	require.NoError(t, err)
	assert.Equal(t, 2, bad)
	ms, err := ReadMetrics(path)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 30}, steps(ms))
}

// assertSameMetrics compares metrics as the lines they write: float32
// values read back as the float64 nearest their short decimal form, so
// they are equal as float32, not as float64.
func assertSameMetrics(t *testing.T, want, got []Metric) {
	t.Helper()
	line := func(ms []Metric) []string {
		var s []string
		for _, m := range ms {
			s = append(s, string(m.appendJSON(nil)))
		}
		return s
	}
	assert.Equal(t, line(want), line(got))
}

func steps(ms []Metric) []int {
	var s []int
	for _, m := range ms {
		s = append(s, m.Step)
	}
	return s
}

func writeTestMetrics(tb testing.TB, path string, n int) {
	tb.Helper()
	var b []byte
	for i := 1; i <= n; i++ {
		b = append(testMetric(i).appendJSON(b), '\n')
	}
	require.NoError(tb, os.WriteFile(path, b, 0o644))
}

// A run logging every step for 100k steps still reads back fast: about
// 0.1 s here (BenchmarkReadMetrics); the bound is loose for slow CI
// machines and -race.
func TestReadMetricsLarge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), MetricsFile)
	writeTestMetrics(t, path, 100_000)
	start := time.Now()
	ms, err := ReadMetrics(path)
	took := time.Since(start)
	require.NoError(t, err)
	require.Len(t, ms, 100_000)
	assertSameMetrics(t, []Metric{testMetric(100_000)}, ms[len(ms)-1:])
	t.Logf("ReadMetrics of 100k lines: %v", took)
	assert.Less(t, took, 3*time.Second)
}

func BenchmarkReadMetrics(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), MetricsFile)
			writeTestMetrics(b, path, n)
			st, err := os.Stat(path)
			require.NoError(b, err)
			b.SetBytes(st.Size())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadMetrics(path); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/line")
		})
	}
}

// longRunMetrics returns the lines of a 10M-step run logged every 50 steps
// (DefaultLogEvery), 200,000 lines, with values shaped like a real log's:
// float32 losses and D outputs that print short, a float64 epoch and
// elapsed time that print long, a little seeded noise.
func longRunMetrics() (data []byte, lines int) {
	const steps, every = 10_000_000, DefaultLogEvery
	rng := rand.New(rand.NewPCG(1, 2))
	f32 := func(v float64) float64 { return float64(float32(v)) }
	for step := every; step <= steps; step += every {
		data = append(Metric{
			Step:         step,
			Epoch:        float64(step*64) / 60_000,
			LossD:        f32(0.6 + 0.4*rng.Float64()),
			LossG:        f32(1.5 + 2*rng.Float64()),
			DX:           f32(0.4 + 0.4*rng.Float64()),
			DGZ1:         f32(0.1 + 0.4*rng.Float64()),
			DGZ2:         f32(0.05 + 0.4*rng.Float64()),
			ImagesPerSec: 800 + 50*rng.Float64(),
			Elapsed:      float64(step) * 0.0789 * (1 + 0.01*rng.Float64()),
		}.appendJSON(data), '\n')
		lines++
	}
	return data, lines
}

// BenchmarkReadMetricsLongRun times the largest log a user waits on: the
// loss plot at the end of a run and the viewer's title reread the whole
// metrics.jsonl, and a resume decodes every line of it. s/read is the
// wait. ReadMetrics is the real reader; encoding-json is the same read
// with encoding/json decoding every line (the reference decoder), which is
// what ReadMetrics would cost without parseMetricFast.
func BenchmarkReadMetricsLongRun(b *testing.B) {
	path := filepath.Join(b.TempDir(), MetricsFile)
	data, lines := longRunMetrics()
	require.NoError(b, os.WriteFile(path, data, 0o644))
	for _, bc := range []struct {
		name string
		read func() ([]Metric, error)
	}{
		{"ReadMetrics", func() ([]Metric, error) { return ReadMetrics(path) }},
		{"encoding-json", func() ([]Metric, error) {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			ms := make([]Metric, 0, lines)
			for line := range bytes.Lines(data) {
				var m Metric
				if err := m.unmarshalSlow(line); err != nil {
					return nil, err
				}
				ms = append(ms, m)
			}
			return ms, nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				ms, err := bc.read()
				if err != nil || len(ms) != lines {
					b.Fatalf("%d of %d lines: %v", len(ms), lines, err)
				}
			}
			perRead := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perRead/float64(lines), "ns/line")
			b.ReportMetric(perRead/1e9, "s/read")
		})
	}
}

func BenchmarkMetricsLogAppend(b *testing.B) {
	l, err := OpenMetricsLog(filepath.Join(b.TempDir(), MetricsFile))
	require.NoError(b, err)
	defer l.Close()
	m := testMetric(50)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(m); err != nil {
			b.Fatal(err)
		}
	}
}

// The fast decoder must agree with encoding/json wherever it answers.
func TestParseMetricFastAgrees(t *testing.T) {
	t.Parallel()
	for _, line := range metricSeedLines() {
		checkFastAgrees(t, []byte(line))
	}
	// The lines this package writes take the fast path.
	b, _ := json.Marshal(testMetric(50))
	_, ok := parseMetricFast(b)
	assert.True(t, ok)
}

func metricSeedLines() []string {
	b, _ := json.Marshal(testMetric(50))
	return []string{
		string(b),
		` { "step" : 3 , "loss_d" : null , "x": 1e5 } `,
		`{"step":3,"loss_d":1,"loss_d":null}`,
		`{"step":3,"LOSS_D":2}`,
		`{"STEP":3}`,
		`{"step":1.0}`,
		`{"step":1e3}`,
		`{"step":null}`,
		`{"step":3,"loss_d":+1}`,
		`{"step":3,"loss_d":01}`,
		`{"step":3,"loss_d":.5}`,
		`{"step":3,"loss_d":1.}`,
		`{"step":3,"loss_d":1e400}`,
		`{"step":3,"loss_d":-0}`,
		`{"step":3,"note":"hi"}`,
		`{"step":3,"loss_d":"1"}`,
		`{"step":3,"st\u0065p":4}`,
		`{"step":3,}`,
		`{"step":3}x`,
		`{"step":3`,
		`{}`,
		`[]`,
		``,
		`{"step":99999999999999999999}`,
		`{"step":3,"loss_d":1,"swd":12.5,"kid":0.01,"kid_std":0.002,"fid":null}`,
		`{"step":3,"fid":45.5}`,
	}
}

// An evaluation's keys are written only when measured and read back; a
// line without them keeps the original form.
func TestMetricEvalFields(t *testing.T) {
	t.Parallel()
	m := testMetric(50)
	plain, _ := json.Marshal(m)
	assert.NotContains(t, string(plain), "swd")
	assert.False(t, m.Evaluated())
	swd, kid, std := 12.5, 0.0125, 0.002
	m.SWD, m.KID, m.KIDStd = &swd, &kid, &std
	b, _ := json.Marshal(m)
	assert.Contains(t, string(b), `"swd":12.5,"kid":0.0125,"kid_std":0.002}`)
	var back Metric
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, back.Evaluated())
	assert.Equal(t, swd, *back.SWD)
	assert.Equal(t, kid, *back.KID)
	assert.Nil(t, back.FID)
	_, ok := parseMetricFast(b)
	assert.True(t, ok, "evaluation lines take the fast path too")
}

func checkFastAgrees(t *testing.T, line []byte) {
	fast, ok := parseMetricFast(line)
	var slow Metric
	err := slow.unmarshalSlow(line)
	if !ok {
		return
	}
	if !assert.NoError(t, err, "fast path accepted %q", line) {
		return
	}
	// NaN != NaN: compare the lines they encode to.
	assert.Equal(t, string(slow.appendJSON(nil)), string(fast.appendJSON(nil)), "%q", line)
	assert.Equal(t, slow.Step, fast.Step, "%q", line)
}

func FuzzParseMetric(f *testing.F) {
	for _, line := range metricSeedLines() {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkFastAgrees(t, line)
	})
}
