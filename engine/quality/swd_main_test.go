package quality

import (
	"os"
	"testing"

	"vkgan/engine"
	"vkgan/internal/devtest"
	"vkgan/vk"
)

// The package's one TestMain. Only tests that call newTestDevice open the
// device (and skip without one, or fail when VKGAN_REQUIRE_DEVICE=1); host
// tests never touch it, and Main closes it only if one was opened.
var testDevice = devtest.New(func(onMessage func(string)) (*engine.Device, error) {
	return engine.Open(vk.Options{OnMessage: onMessage})
})

func TestMain(m *testing.M) { os.Exit(testDevice.Main(m)) }

// newTestDevice returns the shared test device (see devtest.Shared.Get).
func newTestDevice(t testing.TB) *engine.Device {
	t.Helper()
	return testDevice.Get(t)
}
