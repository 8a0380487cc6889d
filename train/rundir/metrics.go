package rundir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"

	"vkgan/internal/atomicfile"
)

// Metric is one logged step, one line of metrics.jsonl:
//
//	{"step":50,"epoch":0.8,"loss_d":1.3862,"loss_g":0.6931,"d_x":0.5,"d_g_z1":0.5,"d_g_z2":0.5,"images_per_sec":812.5,"elapsed":3.9}
//
// Non-finite values (a diverged loss) are written as null, which JSON tools
// read as missing, and read back as NaN. A value that is exactly a float32
// (the device's losses) is written in float32's shortest form, so 0.6931
// reads 0.6931 rather than 0.6930999755859375 and converts back to the same
// float32.
type Metric struct {
	Step  int     `json:"step"`
	Epoch float64 `json:"epoch"` // passes over the data set, fractional
	LossD float64 `json:"loss_d"`
	LossG float64 `json:"loss_g"`
	DX    float64 `json:"d_x"`    // mean D(x) on the real batch
	DGZ1  float64 `json:"d_g_z1"` // mean D(G(z)) before D's update
	DGZ2  float64 `json:"d_g_z2"` // mean D(G(z)) after D's update
	// ImagesPerSec is real images per second since the previous line.
	ImagesPerSec float64 `json:"images_per_sec"`
	Elapsed      float64 `json:"elapsed"` // seconds of training, resumes included
	// Image quality at this step, from -eval-every (see train/eval): nil
	// when not measured, and then not written, so lines without an
	// evaluation keep their original form.
	SWD    *float64 `json:"swd,omitempty"`
	KID    *float64 `json:"kid,omitempty"`
	KIDStd *float64 `json:"kid_std,omitempty"`
	FID    *float64 `json:"fid,omitempty"`
	// R1 is the last R1 penalty taken (-r1), nil when the run has none.
	R1 *float64 `json:"r1,omitempty"`
}

// Evaluated reports whether the line holds an image-quality measurement.
func (m Metric) Evaluated() bool { return m.SWD != nil || m.KID != nil || m.FID != nil }

var (
	_ json.Marshaler   = Metric{}
	_ json.Unmarshaler = (*Metric)(nil)
)

// MarshalJSON writes m as one JSON object in the metrics.jsonl form.
func (m Metric) MarshalJSON() ([]byte, error) {
	return m.appendJSON(nil), nil
}

func (m Metric) appendJSON(b []byte) []byte {
	b = append(b, `{"step":`...)
	b = strconv.AppendInt(b, int64(m.Step), 10)
	for _, f := range [...]struct {
		key string
		v   float64
	}{
		{`,"epoch":`, m.Epoch},
		{`,"loss_d":`, m.LossD},
		{`,"loss_g":`, m.LossG},
		{`,"d_x":`, m.DX},
		{`,"d_g_z1":`, m.DGZ1},
		{`,"d_g_z2":`, m.DGZ2},
		{`,"images_per_sec":`, m.ImagesPerSec},
		{`,"elapsed":`, m.Elapsed},
	} {
		b = append(b, f.key...)
		b = appendJSONFloat(b, f.v)
	}
	for _, f := range [...]struct {
		key string
		v   *float64
	}{
		{`,"swd":`, m.SWD},
		{`,"kid":`, m.KID},
		{`,"kid_std":`, m.KIDStd},
		{`,"fid":`, m.FID},
		{`,"r1":`, m.R1},
	} {
		if f.v != nil {
			b = append(b, f.key...)
			b = appendJSONFloat(b, *f.v)
		}
	}
	return append(b, '}')
}

// appendJSONFloat formats v as a JSON number, or null if it is not finite.
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	bits := 64
	if float64(float32(v)) == v {
		bits = 32
	}
	// Exponent form only where plain digits get long, as encoding/json does.
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, v, format, -1, bits)
}

// metricWire is a line as decoded: pointers tell a null or missing value
// (NaN) from a zero.
type metricWire struct {
	Step         *int     `json:"step"`
	Epoch        *float64 `json:"epoch"`
	LossD        *float64 `json:"loss_d"`
	LossG        *float64 `json:"loss_g"`
	DX           *float64 `json:"d_x"`
	DGZ1         *float64 `json:"d_g_z1"`
	DGZ2         *float64 `json:"d_g_z2"`
	ImagesPerSec *float64 `json:"images_per_sec"`
	Elapsed      *float64 `json:"elapsed"`
	SWD          *float64 `json:"swd"`
	KID          *float64 `json:"kid"`
	KIDStd       *float64 `json:"kid_std"`
	FID          *float64 `json:"fid"`
	R1           *float64 `json:"r1"`
}

// UnmarshalJSON reads one metrics line. The step is required; a null or
// missing value reads as NaN; unknown keys are ignored, so lines from a
// newer version that logs more still read.
func (m *Metric) UnmarshalJSON(data []byte) error {
	if fast, ok := parseMetricFast(data); ok {
		*m = fast
		return nil
	}
	return m.unmarshalSlow(data)
}

// unmarshalSlow is the reference decoder, and the one that reports errors.
func (m *Metric) unmarshalSlow(data []byte) error {
	var w metricWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.Step == nil {
		return errors.New(`no "step"`)
	}
	val := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*m = Metric{
		Step:         *w.Step,
		Epoch:        val(w.Epoch),
		LossD:        val(w.LossD),
		LossG:        val(w.LossG),
		DX:           val(w.DX),
		DGZ1:         val(w.DGZ1),
		DGZ2:         val(w.DGZ2),
		ImagesPerSec: val(w.ImagesPerSec),
		Elapsed:      val(w.Elapsed),
		SWD:          w.SWD,
		KID:          w.KID,
		KIDStd:       w.KIDStd,
		FID:          w.FID,
		R1:           w.R1,
	}
	return nil
}

// parseMetricFast decodes the lines this package writes, a flat object of
// numbers and nulls, without allocating. Anything else (strings, nesting,
// escapes, a missing step, bad syntax) returns ok = false and goes to the
// reference decoder, which gives the same result or the error.
//
// It is kept because encoding/json alone makes users wait (issue 11). A
// 10M-step run logged every 50 steps is 200,000 lines, 39 MB, which the
// end-of-run loss plot, the viewer's title on every checkpoint reload and
// a resume (TruncateMetricsAfter) read whole. BenchmarkReadMetricsLongRun
// on a 2-core VM (Go 1.26, -benchtime 10x -count 3, the quietest of
// three runs): ReadMetrics 0.13-0.19 s (660-960 ns/line, 6 allocs per
// read), encoding/json alone 0.63-0.65 s (3140-3240 ns/line, 14 allocs
// per line); under load 0.2-0.34 s against 0.75-1.46 s. Over half a
// second is a visible wait, so this stays until encoding/json closes the
// gap; rerun the benchmark before deleting it.
func parseMetricFast(b []byte) (m Metric, ok bool) {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	nan := math.NaN()
	m = Metric{Epoch: nan, LossD: nan, LossG: nan, DX: nan, DGZ1: nan, DGZ2: nan, ImagesPerSec: nan, Elapsed: nan}
	haveStep := false
	ws()
	if i == len(b) || b[i] != '{' {
		return m, false
	}
	i++
	ws()
	if i < len(b) && b[i] == '}' {
		return m, false // no step
	}
	for {
		// Key: [a-z0-9_] only; encoding/json matches keys without regard to
		// case (even Unicode folding), so anything else goes the slow way.
		ws()
		if i == len(b) || b[i] != '"' {
			return m, false
		}
		i++
		k0 := i
		for i < len(b) && (b[i] >= 'a' && b[i] <= 'z' || b[i] >= '0' && b[i] <= '9' || b[i] == '_') {
			i++
		}
		if i == len(b) || b[i] != '"' {
			return m, false
		}
		key := b[k0:i]
		i++
		ws()
		if i == len(b) || b[i] != ':' {
			return m, false
		}
		i++
		ws()
		// Value: null or a number.
		v0 := i
		for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == '-' || b[i] == '+' || b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
			i++
		}
		tok := b[v0:i]
		var v float64
		isNull := false
		switch {
		case len(tok) > 0:
			if !isJSONNumber(tok) {
				return m, false
			}
			var err error
			if v, err = strconv.ParseFloat(string(tok), 64); err != nil {
				return m, false
			}
		case bytes.HasPrefix(b[i:], []byte("null")):
			i += 4
			v, isNull = nan, true
		default:
			return m, false
		}
		switch string(key) {
		case "step":
			n, err := strconv.Atoi(string(tok))
			if isNull || err != nil {
				return m, false
			}
			m.Step, haveStep = n, true
		case "epoch":
			m.Epoch = v
		case "loss_d":
			m.LossD = v
		case "loss_g":
			m.LossG = v
		case "d_x":
			m.DX = v
		case "d_g_z1":
			m.DGZ1 = v
		case "d_g_z2":
			m.DGZ2 = v
		case "images_per_sec":
			m.ImagesPerSec = v
		case "elapsed":
			m.Elapsed = v
		case "swd", "kid", "kid_std", "fid", "r1":
			// null is not measured, as encoding/json reads it.
			p := &m.SWD
			switch string(key) {
			case "kid":
				p = &m.KID
			case "kid_std":
				p = &m.KIDStd
			case "fid":
				p = &m.FID
			case "r1":
				p = &m.R1
			}
			*p = nil
			if !isNull {
				*p = &v
			}
		}
		ws()
		if i == len(b) {
			return m, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return m, false
		}
		i++
		ws()
		return m, haveStep && i == len(b)
	}
}

// isJSONNumber reports whether tok is a number in JSON's grammar, which is
// stricter than strconv's (no leading '+', no leading zeros, digits around
// the point).
func isJSONNumber(tok []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	if i < len(tok) && tok[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(tok)
}

// MetricsLog appends Metric lines to a metrics.jsonl file. Each line goes
// to the file in one write, so a crash tears at most the last line, which
// OpenMetricsLog and ReadMetrics drop. Its methods are safe for concurrent
// use.
type MetricsLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
	err  error // sticky: after a failed write the file's tail is unknown
}

// OpenMetricsLog opens path for appending, creating it if needed. A torn
// last line (a crash mid-write) is cut off, or completed with its newline if
// it is a whole record. On resume, call TruncateMetricsAfter first to drop
// the lines logged after the checkpoint.
func OpenMetricsLog(path string) (*MetricsLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := repairTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("train: metrics log %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	return &MetricsLog{f: f, path: path}, nil
}

// repairTail makes f end with a newline: an unterminated last line that
// parses as a Metric gets its newline, anything else after the last newline
// is cut off.
func repairTail(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	// Scan back in chunks for the last newline; lines are short, so this is
	// normally one small read.
	const chunk = 4096
	buf := make([]byte, chunk)
	start := size // just after the last newline
	for start > 0 {
		lo := max(start-chunk, 0)
		b := buf[:start-lo]
		if _, err := f.ReadAt(b, lo); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			start = lo + int64(i) + 1
			break
		}
		start = lo
	}
	if start == size {
		return nil // ends with a newline
	}
	// A record is a few hundred bytes; a longer tail cannot be one.
	const maxLine = 64 << 10
	if size-start > maxLine {
		return f.Truncate(start)
	}
	tail := make([]byte, size-start)
	if _, err := f.ReadAt(tail, start); err != nil {
		return err
	}
	var m Metric
	if err := m.UnmarshalJSON(tail); err == nil {
		_, err := f.WriteAt([]byte{'\n'}, size)
		return err
	}
	return f.Truncate(start)
}

// Append writes m as one line. After a failed write every later Append
// returns that error: the file may end in a torn line that a later line
// must not be glued onto.
func (l *MetricsLog) Append(m Metric) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.f == nil {
		return fmt.Errorf("train: metrics log %s: append after Close", l.path)
	}
	l.buf = append(m.appendJSON(l.buf[:0]), '\n')
	atomicfile.BeforeChange("metrics: append")
	if _, err := l.f.Write(l.buf); err != nil {
		l.err = fmt.Errorf("train: metrics log: %w", err)
		return l.err
	}
	return nil
}

// Sync flushes the lines written so far to stable storage. Call it before
// writing a checkpoint, so the log holds every line up to the checkpoint's
// step even after a power loss.
func (l *MetricsLog) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("train: metrics log: %w", err)
	}
	return nil
}

// Close syncs and closes the file. It is safe to call more than once and
// on a nil log.
func (l *MetricsLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	serr := l.f.Sync()
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("train: metrics log: %w", err)
	}
	return nil
}

// ReadMetrics reads every line of a metrics.jsonl file. An unterminated last
// line that does not parse (a crash mid-write) is dropped; any other bad
// line is an error naming the file and line. Blank lines are skipped.
func ReadMetrics(path string) ([]Metric, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	ms, _, err := parseMetrics(data, func(m Metric, line []byte) {})
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	return ms, nil
}

// parseMetrics parses the lines of data, calling each for every record with
// its line (newline excluded). It reports whether a torn last line was
// dropped.
func parseMetrics(data []byte, each func(m Metric, line []byte)) (ms []Metric, torn bool, err error) {
	ms = make([]Metric, 0, bytes.Count(data, []byte{'\n'})+1)
	for lineNo := 1; len(data) > 0; lineNo++ {
		line, rest, terminated := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m Metric
		if err := m.UnmarshalJSON(line); err != nil {
			if !terminated {
				return ms, true, nil
			}
			return nil, false, fmt.Errorf("line %d: %w", lineNo, err)
		}
		ms = append(ms, m)
		each(m, line)
	}
	return ms, false, nil
}

// TruncateMetricsAfter drops the lines of a metrics.jsonl file whose step is
// after step, so that a run resumed from a checkpoint at step does not log
// the steps it repeats twice, and every line that does not parse (torn by a
// crash, or by two writers before runs were locked), returning how many of
// those it dropped. The file is rewritten atomically, and only if something
// changes; a missing file is not an error (there is nothing to drop).
func TruncateMetricsAfter(path string, step int) (bad int, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	var kept bytes.Buffer
	dropped := false
	for rest := data; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			dropped = true
			continue
		}
		var m Metric
		if err := m.UnmarshalJSON(line); err != nil {
			bad++
			dropped = true
			continue
		}
		if m.Step > step {
			dropped = true
			continue
		}
		kept.Write(line)
		kept.WriteByte('\n')
	}
	if !dropped {
		return 0, nil
	}
	return bad, atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(kept.Bytes())
		return err
	})
}
