// Package train turns a folder of images into a trained generator: it
// decodes the data set once (cached between runs) and uploads it to the
// device, runs engine's recorded GAN step in a loop, and writes what a run
// leaves behind: config.json, metrics.jsonl, 8x8 sample grids, losses.png,
// and checkpoints as PyTorch-compatible safetensors files.
//
// Costs: per step the host submits one command buffer and waits; it reads
// the metrics buffer (a few hundred bytes) only on log steps, and downloads
// the weights only for checkpoints and samples. Every file is written
// atomically (temporary file, fsync, rename), and a checkpoint becomes
// current only when checkpoint.json is replaced after its directory is
// complete, so a crash at any moment leaves the previous checkpoint whole.
package train
