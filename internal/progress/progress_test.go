package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for a Bar.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestProgress(buf *bytes.Buffer, label string, total int) (*Bar, *fakeClock) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := New(buf, label, total)
	p.now = clk.now
	p.start, p.last = clk.t, clk.t
	return p, clk
}

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p, clk := newTestProgress(&buf, "decoding", 100)
	require.False(t, p.tty, "a bytes.Buffer is not a terminal")

	p.Add(10)
	assert.Empty(t, buf.String(), "no line before the interval has passed")

	clk.t = clk.t.Add(6 * time.Second)
	p.Add(20)
	clk.t = clk.t.Add(time.Second)
	p.Add(5) // too soon after the last line
	clk.t = clk.t.Add(5 * time.Second)
	p.Set(50, "3 skipped")
	clk.t = clk.t.Add(3 * time.Second)
	p.Set(100, "3 skipped")
	p.Done()
	p.Done() // idempotent
	p.Add(1) // after Done: silent

	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	require.Len(t, lines, 3, "output:\n%s", buf.String())
	assert.Equal(t, "decoding 30/100 (30%) 5.00/s ETA 14s", lines[0])
	assert.Equal(t, "decoding 50/100 (50%) 4.17/s ETA 12s  3 skipped", lines[1])
	assert.Equal(t, "decoding 100/100 (100%) 6.67/s in 15s  3 skipped", lines[2])
	assert.NotContains(t, buf.String(), "\r", "no terminal control in plain output")
	assert.NotContains(t, buf.String(), "\x1b")
}

func TestProgressUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	p, clk := newTestProgress(&buf, "steps", 0)
	clk.t = clk.t.Add(2 * time.Second)
	p.Add(300)
	p.Done()
	assert.Equal(t, "steps 300 150/s in 2s\n", buf.String())
}

func TestProgressNil(t *testing.T) {
	p := New(nil, "x", 10)
	assert.Nil(t, p)
	// None of these may panic.
	p.Add(1)
	p.Set(2, "s")
	p.Done()
}

func TestProgressConcurrentAdd(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, "work", 800)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				p.Add(1)
			}
		}()
	}
	wg.Wait()
	p.Done()
	assert.Contains(t, buf.String(), "work 800/800 (100%)")
}
