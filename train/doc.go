// Package train runs the DCGAN training loop: Run turns a folder of images
// (or the emoji set) into a trained generator. It loads the data set
// (package data) and uploads it to the device once, runs engine's
// recorded GAN step in a loop, and leaves behind what package rundir
// describes: config.json, metrics.jsonl, 8x8 sample grids (package grid),
// losses.png, and checkpoints as PyTorch-compatible safetensors files.
//
// Costs: per step the host submits one command buffer and waits; it reads
// the metrics buffer (a few hundred bytes) only on log steps, and downloads
// the weights only for checkpoints and samples. The run directory is
// locked for the whole run, and a resume is checked in full before
// anything in it changes (rundir.PlanResume).
package train
