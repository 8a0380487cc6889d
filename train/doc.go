// Package train will hold the DCGAN training loop built on engine: data
// sets decoded once onto the device, the recorded-once training step, and
// the files a run leaves behind (safetensors checkpoints written atomically,
// sample grids, loss logs and plots). Nothing lives here yet.
package train
