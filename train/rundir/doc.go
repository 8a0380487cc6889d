// Package rundir is a training run's directory: its layout and file
// names, its configuration (Config, saved as config.json), its metrics
// log, its checkpoints, its lock, and the rules by which a run directory
// never loses work. The training loop (package train) writes runs through
// it; the viewer and `vkgan sample` read them through it alone.
//
// A run directory holds:
//
//	.lock                      held by the one process that writes the run (Lock)
//	config.json                Config, with the history of resumes that changed it
//	metrics.jsonl              one Metric per logged step (MetricsLog, ReadMetrics)
//	samples/step_NNNNNNN.png   8x8 grids of G's samples from FixedNoise (SamplePath)
//	losses.png                 the loss plot
//	checkpoint.json            names the current checkpoint (CheckpointInfo)
//	checkpoints/step_NNNNNNN/  G, D, G_ema and optim.safetensors (SaveCheckpoint, ReadCheckpoint)
//	G.safetensors, D.safetensors, G_ema.safetensors
//	                           copies of the current checkpoint's, for users
//
// A directory is a run only when it has checkpoint.json; a new run takes
// an empty one (CheckNew) and writes a step-0 checkpoint before its first
// step. Checkpoints are only added, and made current by an atomic rename
// of checkpoint.json; every file goes through internal/atomicfile. A
// resume (PlanResume) reads and checks the configuration, the newest
// intact checkpoint and the flags before anything is written, and
// Resume.Commit then makes the directory agree with what was loaded.
//
// Costs: SaveCheckpoint downloads the GAN's whole state from the device
// (one read per parameter table) and Checkpoint.Apply uploads it; neither
// runs on a plain training step. ReadCheckpoint reads and checks every
// tensor on the host before anything reaches the device.
package rundir
