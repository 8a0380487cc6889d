package train

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPickDevice(t *testing.T) {
	for _, c := range []struct {
		sel, env       string
		local, devices int
		want, err      string
	}{
		{"", "", 0, 2, "0", ""},
		{"", "", 1, 2, "1", ""},
		{"", "", 3, 2, "1", ""}, // more ranks than devices: shared
		{"", "", 1, 0, "", ""},
		{"nvidia", "", 3, 4, "nvidia", ""}, // one entry for every rank
		{"", "2,0", 1, 4, "0", ""},         // VKGAN_DEVICE when no flag
		{"1, 3", "0,2", 1, 4, "3", ""},     // the flag wins
		{"0,1", "", 2, 4, "", "local rank 2 has none"},
	} {
		got, err := pickDevice(c.sel, c.env, c.local, c.devices)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, "%+v", c)
			continue
		}
		require.NoError(t, err, "%+v", c)
		require.Equal(t, c.want, got, "%+v", c)
	}
}
