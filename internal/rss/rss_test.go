package rss

import "testing"

func TestPeakGrowsWithTouchedMemory(t *testing.T) {
	before := Peak()
	if before == 0 {
		t.Fatal("no peak RSS on a unix system")
	}
	buf := make([]byte, 256<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after := Peak()
	if after < before+200<<20 {
		t.Fatalf("peak RSS %d -> %d after touching 256 MiB", before, after)
	}
	_ = buf[len(buf)-1]
}
