package rundir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/internal/atomicfile"
	"vkgan/internal/safetensors"
)

// Checkpoint files. A checkpoint is a directory checkpoints/step_NNNNNNN
// holding G.safetensors and D.safetensors (PyTorch state_dict names and
// layouts: they load into the example's Generator and Discriminator as
// they are), G_ema.safetensors when an average is kept, and
// optim.safetensors (Adam moments and step counters).
//
// Checkpoints are only ever added. A new one is written into a temporary
// directory, synced, and renamed to its step_ name; checkpoint.json,
// replaced atomically after that, makes it current; only then are older
// ones pruned (the newest checkpointsKept stay). Nothing current is ever
// removed or rewritten in place, so a crash or a full disk at any moment
// leaves the current checkpoint whole. The run directory also gets copies
// (not hard links: they share no storage with a checkpoint, so editing one
// in place cannot damage the other) G.safetensors, D.safetensors and
// G_ema.safetensors of the latest weights for users.
const (
	CheckpointFile  = "checkpoint.json"
	CheckpointsDir  = "checkpoints"
	GFile           = "G.safetensors"
	DFile           = "D.safetensors"
	GEMAFile        = "G_ema.safetensors"
	OptimFile       = "optim.safetensors"
	checkpointsKept = 2
	formatVersion   = "vkgan-checkpoint-1"
	// Names in checkpoints/ that are not checkpoints: a directory being
	// written, one replaced by a newer write of the same step (both
	// removed by the next prune), and a damaged one a resume moved aside
	// (kept for the user to look at).
	tmpPrefix     = ".tmp-"
	oldPrefix     = ".old-"
	damagedSuffix = ".damaged"
)

// CheckpointInfo is checkpoint.json.
type CheckpointInfo struct {
	Format  string  `json:"format"`
	Step    int     `json:"step"`
	Dir     string  `json:"dir"`     // relative to the run directory
	Elapsed float64 `json:"elapsed"` // seconds of training up to this step
}

// netTensors lists a network's state in PyTorch state_dict order: module
// by module, each module's parameters, then its buffers (running
// statistics, spectral norm's vectors), then a batch norm's
// num_batches_tracked.
func netTensors(net *engine.Net, params, stats map[string][]float32, batchesTracked int64) []safetensors.Tensor {
	var order []string
	byModule := map[string][]safetensors.Tensor{}
	add := func(name string, t safetensors.Tensor) {
		mod := name[:max(strings.LastIndexByte(name, '.'), 0)]
		if _, ok := byModule[mod]; !ok {
			order = append(order, mod)
		}
		byModule[mod] = append(byModule[mod], t)
	}
	for _, set := range []struct {
		specs []engine.ParamSpec
		vals  map[string][]float32
	}{{net.Params, params}, {net.Stats, stats}} {
		for _, p := range set.specs {
			add(p.Name, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: p.Shape, F32: set.vals[p.Name]})
		}
	}
	for _, mod := range net.BatchNorms() {
		name := mod + ".num_batches_tracked"
		add(name, safetensors.Tensor{Name: name, DType: safetensors.I64, Shape: []int{}, I64: []int64{batchesTracked}})
	}
	var out []safetensors.Tensor
	for _, mod := range order {
		out = append(out, byModule[mod]...)
	}
	return out
}

// batchesTracked is PyTorch's num_batches_tracked after step steps: G runs
// once per D update; D three times per step with one D update (twice per D
// update plus once for G's update).
func batchesTracked(net *engine.Net, step, dsteps int) int64 {
	if net.Name == "G" {
		return int64(step * dsteps)
	}
	return int64(step * (2*dsteps + 1))
}

// stepDirName is a checkpoint's directory name in checkpoints/.
func stepDirName(step int) string { return fmt.Sprintf("step_%07d", step) }

// parseStepDir returns the step of a checkpoint directory name.
func parseStepDir(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "step_")
	if !ok || len(digits) < 7 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil && n >= 0
}

// checkpointSteps lists the steps of the checkpoint directories in
// checkpoints/, newest first.
func checkpointSteps(runDir string) []int {
	entries, err := os.ReadDir(filepath.Join(runDir, CheckpointsDir))
	if err != nil {
		return nil
	}
	var steps []int
	for _, e := range entries {
		if n, ok := parseStepDir(e.Name()); ok && e.IsDir() {
			steps = append(steps, n)
		}
	}
	slices.Sort(steps)
	slices.Reverse(steps)
	return steps
}

// SaveCheckpoint writes the GAN's whole state as of step as a new
// checkpoint and makes it current. When step's checkpoint is already the
// current one it writes nothing.
func SaveCheckpoint(runDir string, gan *engine.GAN, cfg Config, step int, elapsed float64) error {
	rel := filepath.Join(CheckpointsDir, stepDirName(step))
	if cur, err := ReadCheckpointInfo(runDir); err == nil && cur.Step == step && filepath.FromSlash(cur.Dir) == rel {
		return nil
	}
	files, err := checkpointFiles(gan, cfg, step)
	if err != nil {
		return err
	}
	parent := filepath.Join(runDir, CheckpointsDir)
	atomicfile.BeforeChange("checkpoint: mkdir")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix+stepDirName(step)+"-")
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp) // a failed write (a full disk) leaves nothing behind
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": formatVersion, "step": strconv.Itoa(step), "config": string(cfgJSON)}
	for _, n := range slices.Sorted(maps.Keys(files)) {
		if err := safetensors.WriteFile(filepath.Join(tmp, n), files[n], meta); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	final := filepath.Join(runDir, rel)
	if _, err := os.Lstat(final); err == nil {
		// Not current (checked above): left by a crash before checkpoint.json
		// named it, or newer than a checkpoint a resume fell back to. The
		// same step's state replaces it.
		atomicfile.BeforeChange("checkpoint: move aside")
		if err := os.Rename(final, filepath.Join(parent, fmt.Sprintf("%s%s-%d", oldPrefix, stepDirName(step), time.Now().UnixNano()))); err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
	}
	atomicfile.BeforeChange("checkpoint: rename")
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	done = true
	if err := atomicfile.SyncDir(parent); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := setCurrent(runDir, CheckpointInfo{Format: formatVersion, Step: step, Dir: filepath.ToSlash(rel), Elapsed: elapsed}); err != nil {
		return err
	}
	if err := RefreshRootCopies(runDir, final); err != nil {
		return err
	}
	pruneCheckpoints(runDir, step)
	return nil
}

// RefreshRootCopies makes the run root's G, D and G_ema files copies of
// the checkpoint's in dir, rewriting (atomically) only those that differ.
func RefreshRootCopies(runDir, dir string) error {
	for _, n := range []string{GFile, DFile, GEMAFile} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) && n == GEMAFile {
			continue
		}
		if err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
		if old, err := os.ReadFile(filepath.Join(runDir, n)); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(runDir, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// setCurrent makes info's checkpoint the current one.
func setCurrent(runDir string, info CheckpointInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(runDir, CheckpointFile), append(b, '\n'), 0o644)
}

// checkpointFiles downloads the GAN's state and lays it out as the
// checkpoint's files. Non-finite weights are refused: a diverged state
// never replaces a good checkpoint.
func checkpointFiles(gan *engine.GAN, cfg Config, step int) (map[string][]safetensors.Tensor, error) {
	get := func(ps *engine.ParamSet) (map[string][]float32, error) {
		if ps == nil {
			return map[string][]float32{}, nil // a net without running statistics
		}
		v, err := ps.Get()
		if err != nil {
			return nil, fmt.Errorf("train: checkpoint: reading device state: %w", err)
		}
		for name, vals := range v {
			if i := nonFinite(vals); i >= 0 {
				return nil, fmt.Errorf("%w: %s holds %g at step %d; the previous checkpoint is kept", ErrNonFinite, name, vals[i], step)
			}
		}
		return v, nil
	}
	files := map[string][]safetensors.Tensor{}
	var opt, steps []safetensors.Tensor
	for _, ns := range []*engine.NetState{gan.G, gan.D} {
		name := ns.Net.Name
		params, err := get(ns.Params)
		if err != nil {
			return nil, err
		}
		stats, err := get(ns.Stats)
		if err != nil {
			return nil, err
		}
		tracked := batchesTracked(ns.Net, step, cfg.DSteps)
		files[netFile(name)] = netTensors(ns.Net, params, stats, tracked)
		if ns.EMA != nil {
			avg, err := get(ns.EMA)
			if err != nil {
				return nil, err
			}
			files[emaFile(name)] = netTensors(ns.Net, avg, stats, tracked)
		}
		for _, mom := range []struct {
			infix string
			ps    *engine.ParamSet
		}{{".m.", ns.M}, {".v.", ns.V}} {
			v, err := get(mom.ps)
			if err != nil {
				return nil, err
			}
			for _, p := range ns.Net.Params {
				opt = append(opt, safetensors.Tensor{Name: name + mom.infix + p.Name, DType: safetensors.F32, Shape: p.Shape, F32: v[p.Name]})
			}
		}
		t, err := ns.Counter.Value()
		if err != nil {
			return nil, err
		}
		steps = append(steps, safetensors.Tensor{Name: name + ".step", DType: safetensors.I64, Shape: []int{}, I64: []int64{int64(t)}})
	}
	files[OptimFile] = append(opt, steps...)
	return files, nil
}

// netFile and emaFile name a network's weights and their average in a
// checkpoint: G.safetensors, D.safetensors, G_ema.safetensors.
func netFile(net string) string { return net + ".safetensors" }
func emaFile(net string) string { return net + "_ema.safetensors" }

// nonFinite returns the index of the first NaN or infinity in v, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// pruneCheckpoints removes what a crash or a replaced write left in
// checkpoints/ and all but the newest checkpointsKept checkpoints up to
// current. Checkpoints after current (not yet named by checkpoint.json)
// and damaged ones moved aside stay.
func pruneCheckpoints(runDir string, current int) {
	parent := filepath.Join(runDir, CheckpointsDir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), oldPrefix) {
			atomicfile.BeforeChange("prune: leftover")
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
	kept := 0
	for _, s := range checkpointSteps(runDir) {
		if s > current {
			continue
		}
		if kept++; kept > checkpointsKept {
			atomicfile.BeforeChange("prune: old checkpoint")
			_ = os.RemoveAll(filepath.Join(parent, stepDirName(s)))
		}
	}
}

// ReadCheckpointInfo reads checkpoint.json; os.ErrNotExist when the run has
// no checkpoint.
func ReadCheckpointInfo(runDir string) (CheckpointInfo, error) {
	var info CheckpointInfo
	path := filepath.Join(runDir, CheckpointFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("train: %q: %w", path, err)
	}
	if info.Format != formatVersion {
		return info, fmt.Errorf("train: %q: checkpoint format %q, this vkgan reads %q", path, info.Format, formatVersion)
	}
	if _, ok := parseStepDir(filepath.Base(info.Dir)); !ok || info.Step < 0 || strings.Contains(info.Dir, "..") {
		return info, fmt.Errorf("train: %q: invalid checkpoint record", path)
	}
	return info, nil
}

// netState checks a network file against the definition and returns its
// parameters and statistics by name. Missing, mis-shaped and non-finite
// tensors are errors.
func netState(path string, net *engine.Net) (params, stats map[string][]float32, err error) {
	ts, _, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]safetensors.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	take := func(specs []engine.ParamSpec) (map[string][]float32, error) {
		out := map[string][]float32{}
		for _, s := range specs {
			t, ok := byName[s.Name]
			if !ok {
				return nil, fmt.Errorf("train: %q: missing tensor %s", path, s.Name)
			}
			if t.DType != safetensors.F32 || !slices.Equal(t.Shape, s.Shape) {
				return nil, fmt.Errorf("train: %q: tensor %s is %s %v, want F32 %v (a checkpoint of another model size?)", path, s.Name, t.DType, t.Shape, s.Shape)
			}
			if i := nonFinite(t.F32); i >= 0 {
				return nil, fmt.Errorf("train: %q: tensor %s holds %g at index %d (the weights diverged or the file is damaged)", path, s.Name, t.F32[i], i)
			}
			out[s.Name] = t.F32
		}
		return out, nil
	}
	if params, err = take(net.Params); err != nil {
		return nil, nil, err
	}
	if stats, err = take(net.Stats); err != nil {
		return nil, nil, err
	}
	return params, stats, nil
}

// Checkpoint is a checkpoint read whole and checked: every file there and
// well formed, every tensor of the model's shape and finite.
type Checkpoint struct {
	Step int
	Dir  string                    // the checkpoint's directory
	nets map[string]*netCheckpoint // by network name: G, D
}

// netCheckpoint is one network's saved state, each part by tensor name.
type netCheckpoint struct {
	params, stats map[string][]float32
	ema           map[string][]float32 // nil when the checkpoint keeps no average
	m, v          map[string][]float32 // Adam's moments
	step          uint32               // Adam's t
}

// ReadCheckpoint reads and checks the checkpoint in dir (a step_
// directory) for the model of cfg.
func ReadCheckpoint(dir string, cfg Config) (*Checkpoint, error) {
	step, ok := parseStepDir(filepath.Base(dir))
	if !ok {
		return nil, fmt.Errorf("train: %q is not a checkpoint directory", dir)
	}
	model := cfg.GANConfig().Model
	gNet, err := model.Generator()
	if err != nil {
		return nil, err
	}
	dNet, err := model.Discriminator()
	if err != nil {
		return nil, err
	}
	optPath := filepath.Join(dir, OptimFile)
	ts, _, err := safetensors.ReadFile(optPath)
	if err != nil {
		return nil, err
	}
	byName := map[string]safetensors.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	c := &Checkpoint{Step: step, Dir: dir, nets: map[string]*netCheckpoint{}}
	for _, net := range []*engine.Net{gNet, dNet} {
		nc := &netCheckpoint{}
		if nc.params, nc.stats, err = netState(filepath.Join(dir, netFile(net.Name)), net); err != nil {
			return nil, err
		}
		// A run that turned the average on at this resume has none yet.
		if _, serr := os.Stat(filepath.Join(dir, emaFile(net.Name))); serr == nil {
			if nc.ema, _, err = netState(filepath.Join(dir, emaFile(net.Name)), net); err != nil {
				return nil, err
			}
		}
		for _, mom := range []struct {
			infix string
			dst   *map[string][]float32
		}{{".m.", &nc.m}, {".v.", &nc.v}} {
			vals := map[string][]float32{}
			for _, p := range net.Params {
				name := net.Name + mom.infix + p.Name
				t, ok := byName[name]
				if !ok || t.DType != safetensors.F32 || !slices.Equal(t.Shape, p.Shape) {
					return nil, fmt.Errorf("train: %q: missing or mis-shaped tensor %s", optPath, name)
				}
				if i := nonFinite(t.F32); i >= 0 {
					return nil, fmt.Errorf("train: %q: tensor %s holds %g at index %d", optPath, name, t.F32[i], i)
				}
				vals[p.Name] = t.F32
			}
			*mom.dst = vals
		}
		t, ok := byName[net.Name+".step"]
		if !ok || t.DType != safetensors.I64 || len(t.I64) != 1 || t.I64[0] < 0 || t.I64[0] > 1<<32-1 {
			return nil, fmt.Errorf("train: %q: missing or invalid counter %s.step", optPath, net.Name)
		}
		nc.step = uint32(t.I64[0])
		c.nets[net.Name] = nc
	}
	return c, nil
}

// Apply loads the checkpoint's whole state into gan.
func (c *Checkpoint) Apply(gan *engine.GAN) error {
	for _, ns := range []*engine.NetState{gan.G, gan.D} {
		nc, ok := c.nets[ns.Net.Name]
		if !ok {
			return fmt.Errorf("train: checkpoint %q has no network %s", c.Dir, ns.Net.Name)
		}
		avg := nc.ema
		if avg == nil {
			avg = nc.params // a run that turned the average on at resume starts it from the weights
		}
		for _, s := range []struct {
			ps   *engine.ParamSet
			vals map[string][]float32
		}{{ns.Params, nc.params}, {ns.Stats, nc.stats}, {ns.EMA, avg}, {ns.M, nc.m}, {ns.V, nc.v}} {
			if s.ps == nil {
				continue
			}
			if err := s.ps.Set(s.vals); err != nil {
				return err
			}
		}
		if err := ns.Counter.Set(nc.step); err != nil {
			return err
		}
	}
	return nil
}

// candidateDirs lists the checkpoints a reader may use, best first: the
// current one and those before it, newest first; with no readable
// checkpoint.json (a damaged run), every checkpoint, newest first.
func candidateDirs(runDir string) (dirs []string, current *CheckpointInfo, err error) {
	info, ierr := ReadCheckpointInfo(runDir)
	steps := checkpointSteps(runDir)
	if ierr == nil {
		current = &info
		dirs = append(dirs, filepath.Join(runDir, filepath.FromSlash(info.Dir)))
		for _, s := range steps {
			if s < info.Step {
				dirs = append(dirs, filepath.Join(runDir, CheckpointsDir, stepDirName(s)))
			}
		}
		return dirs, current, nil
	}
	if len(steps) == 0 {
		if errors.Is(ierr, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("train: %q has no checkpoint (no %s, no %s/step_*)", runDir, CheckpointFile, CheckpointsDir)
		}
		return nil, nil, ierr
	}
	for _, s := range steps {
		dirs = append(dirs, filepath.Join(runDir, CheckpointsDir, stepDirName(s)))
	}
	return dirs, nil, nil
}

// checkpointConfig reads the configuration a checkpoint was written with,
// from its G file's metadata.
func checkpointConfig(dir string) (Config, error) {
	_, meta, err := safetensors.ReadFile(filepath.Join(dir, GFile))
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig([]byte(meta["config"]))
	if err != nil {
		return Config{}, fmt.Errorf("train: %q: %w", filepath.Join(dir, GFile), err)
	}
	return c, nil
}

// ReadRunConfig reads a run's config.json or, when that is missing or
// damaged, the configuration stored in its newest readable checkpoint.
func ReadRunConfig(runDir string, warn func(string)) (Config, error) {
	cfg, err := LoadConfig(filepath.Join(runDir, ConfigFile))
	if err == nil {
		return cfg, nil
	}
	dirs, _, derr := candidateDirs(runDir)
	if derr != nil {
		return Config{}, err
	}
	for _, d := range dirs {
		if c, cerr := checkpointConfig(d); cerr == nil {
			warn(fmt.Sprintf("%v; using the configuration saved in %q", err, d))
			return c, nil
		}
	}
	return Config{}, err
}

// FindCheckpoint reads the newest intact checkpoint of a run for cfg's
// model: the current one, else the newest intact one before it, with a
// warning naming each damaged one it passed over.
func FindCheckpoint(runDir string, cfg Config, warn func(string)) (*Checkpoint, *CheckpointInfo, error) {
	dirs, current, err := candidateDirs(runDir)
	if err != nil {
		return nil, nil, err
	}
	if current == nil {
		warn(fmt.Sprintf("%q has no readable %s (a damaged run): recovering from its newest intact checkpoint", runDir, CheckpointFile))
	}
	var damaged []error
	for _, d := range dirs {
		c, err := ReadCheckpoint(d, cfg)
		if err != nil {
			damaged = append(damaged, err)
			warn(fmt.Sprintf("checkpoint %q is damaged, skipped: %v", d, err))
			continue
		}
		return c, current, nil
	}
	return nil, current, fmt.Errorf("train: no intact checkpoint in %q: %w", runDir, errors.Join(damaged...))
}

// LoadCheckpoint restores the GAN's whole state from the run's current
// checkpoint.
func LoadCheckpoint(runDir string, gan *engine.GAN, cfg Config) (CheckpointInfo, error) {
	info, err := ReadCheckpointInfo(runDir)
	if err != nil {
		return info, err
	}
	c, err := ReadCheckpoint(filepath.Join(runDir, filepath.FromSlash(info.Dir)), cfg)
	if err != nil {
		return info, err
	}
	return info, c.Apply(gan)
}

// LoadGenerator loads G's weights and statistics (averaged ones with ema,
// when the checkpoint has them) from the run's newest intact checkpoint,
// passing over damaged ones (truncated files, non-finite weights) with a
// warning.
func LoadGenerator(runDir string, gan *engine.GAN, ema bool, warn func(string)) (CheckpointInfo, error) {
	dirs, current, err := candidateDirs(runDir)
	if err != nil {
		return CheckpointInfo{}, err
	}
	var damaged []error
	for _, dir := range dirs {
		file := filepath.Join(dir, GFile)
		if ema {
			if _, err := os.Stat(filepath.Join(dir, GEMAFile)); err == nil {
				file = filepath.Join(dir, GEMAFile)
			}
		}
		step, _ := parseStepDir(filepath.Base(dir))
		gp, gs, err := netState(file, gan.G.Net)
		if err != nil {
			err = fmt.Errorf("checkpoint of step %d: %w", step, err)
			damaged = append(damaged, err)
			warn(fmt.Sprintf("%v; passed over", err))
			continue
		}
		info := CheckpointInfo{Format: formatVersion, Step: step, Dir: filepath.ToSlash(filepath.Join(CheckpointsDir, filepath.Base(dir)))}
		if current != nil && current.Step == step {
			info = *current
		}
		if err := gan.G.Params.Set(gp); err != nil {
			return info, err
		}
		return info, gan.G.Stats.Set(gs)
	}
	return CheckpointInfo{}, fmt.Errorf("train: no usable checkpoint in %q: %w", runDir, errors.Join(damaged...))
}
