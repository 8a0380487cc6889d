package rundir

// Internals for the external tests (rundir_test), which drive whole runs
// through train.Run and so cannot be in this package.
var (
	CheckpointSteps = checkpointSteps
	StepDirName     = stepDirName
)

const (
	TmpPrefix     = tmpPrefix
	DamagedSuffix = damagedSuffix
)
