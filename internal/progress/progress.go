package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Redraw and log intervals. A terminal bar is cheap to redraw but flickers if
// redrawn on every Add; a log file wants a line every few seconds, not one
// per image.
const (
	ttyInterval   = 100 * time.Millisecond
	plainInterval = 5 * time.Second
)

// Bar reports progress of n units of work: on a terminal a bar redrawn in
// place (with count, rate and ETA, plus an extra caller-provided status string),
// elsewhere plain log lines at most every few seconds and at the end.
//
// All methods are safe for concurrent use, and a nil *Bar does nothing,
// so callers that want silence pass a nil writer to New and keep
// calling the methods unconditionally.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	fd       int // for the terminal width; valid when tty
	label    string
	total    int
	done     int
	status   string
	start    time.Time
	last     time.Time // last draw or log line
	interval time.Duration
	finished bool
	now      func() time.Time // the clock; replaced in tests
}

// New starts reporting to w. A nil w gives a nil *Bar, whose
// methods are no-ops. total <= 0 means the amount of work is unknown: the
// report then shows the count and rate but no bar or ETA.
func New(w io.Writer, label string, total int) *Bar {
	if w == nil {
		return nil
	}
	p := &Bar{w: w, label: label, total: total, now: time.Now, interval: plainInterval}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		p.fd = int(f.Fd())
		p.interval = ttyInterval
	}
	p.start = p.now()
	p.last = p.start
	return p
}

// Add records n more units done.
func (p *Bar) Add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.maybeDraw()
}

// Set records that done units are done in all and replaces the status
// string shown after the numbers (for example the current losses).
func (p *Bar) Set(done int, status string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	p.status = status
	p.maybeDraw()
}

// Done writes the final report. Later calls do nothing.
func (p *Bar) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	line := p.line(p.now(), true)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// maybeDraw redraws the bar or writes a log line when the interval has
// passed. The caller holds p.mu.
func (p *Bar) maybeDraw() {
	if p.finished {
		return
	}
	now := p.now()
	if now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	line := p.line(now, false)
	if p.tty {
		// \r and erase-to-end-of-line redraw in place without scrolling.
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// line formats the current state: label, optional bar, count, percentage,
// rate, ETA (or total time at the end) and status.
func (p *Bar) line(now time.Time, final bool) string {
	elapsed := now.Sub(p.start)
	var rate float64
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	var b strings.Builder
	b.WriteString(p.label)
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		frac = min(max(frac, 0), 1)
		if p.tty {
			b.WriteString(" ")
			b.WriteString(drawBar(frac, p.barWidth()))
		}
		fmt.Fprintf(&b, " %d/%d (%.0f%%)", p.done, p.total, 100*frac)
	} else {
		fmt.Fprintf(&b, " %d", p.done)
	}
	fmt.Fprintf(&b, " %s/s", formatRate(rate))
	switch {
	case final:
		fmt.Fprintf(&b, " in %s", formatDuration(elapsed))
	case p.total > 0 && rate > 0 && p.done < p.total:
		eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
		fmt.Fprintf(&b, " ETA %s", formatDuration(eta))
	}
	if p.status != "" {
		b.WriteString("  ")
		b.WriteString(p.status)
	}
	s := b.String()
	if p.tty {
		// A line longer than the terminal wraps, and \r then redraws only
		// the last row, leaving a trail; cut it to fit.
		if w, _, err := term.GetSize(p.fd); err == nil && w > 1 {
			if r := []rune(s); len(r) >= w {
				s = string(r[:w-1])
			}
		}
	}
	return s
}

// barWidth is the bar's width in cells: a quarter of the terminal, within
// [10, 40].
func (p *Bar) barWidth() int {
	w, _, err := term.GetSize(p.fd)
	if err != nil || w <= 0 {
		return 20
	}
	return min(max(w/4, 10), 40)
}

func drawBar(frac float64, width int) string {
	n := int(frac * float64(width))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

func formatRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	default:
		return fmt.Sprintf("%.2f", r)
	}
}

// formatDuration prints whole seconds (or tenths under ten seconds), which
// is all a progress report needs.
func formatDuration(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
