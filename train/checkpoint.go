package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"vkgan/engine"
)

// Checkpoint files. A checkpoint is a directory checkpoints/step_NNNNNNN
// holding G.safetensors and D.safetensors (PyTorch state_dict names and
// layouts: they load into the example's Generator and Discriminator as
// they are), G_ema.safetensors when an average is kept, and
// optim.safetensors (Adam moments and step counters). checkpoint.json,
// replaced atomically after the directory is complete and synced, names
// the current one, so a crash at any moment leaves the previous checkpoint
// whole. The run directory also gets hard links G.safetensors and
// D.safetensors to the latest weights for users.
const (
	CheckpointFile  = "checkpoint.json"
	CheckpointsDir  = "checkpoints"
	GFile           = "G.safetensors"
	DFile           = "D.safetensors"
	GEMAFile        = "G_ema.safetensors"
	OptimFile       = "optim.safetensors"
	checkpointsKept = 2
	formatVersion   = "vkgan-checkpoint-1"
)

// CheckpointInfo is checkpoint.json.
type CheckpointInfo struct {
	Format  string  `json:"format"`
	Step    int     `json:"step"`
	Dir     string  `json:"dir"`     // relative to the run directory
	Elapsed float64 `json:"elapsed"` // seconds of training up to this step
}

// netTensors lists a network's state in PyTorch state_dict order.
func netTensors(net *engine.Net, params, stats map[string][]float32, batchesTracked int64) []STensor {
	var out []STensor
	bn := map[string]bool{}
	for _, b := range net.BatchNorms() {
		bn[b] = true
	}
	shapes := map[string][]int{}
	for _, p := range append(append([]engine.ParamSpec(nil), net.Params...), net.Stats...) {
		shapes[p.Name] = p.Shape
	}
	for _, p := range net.Params {
		if strings.HasSuffix(p.Name, ".bias") {
			continue // emitted with its batch norm below
		}
		mod := strings.TrimSuffix(p.Name, ".weight")
		if !bn[mod] {
			out = append(out, STensor{Name: p.Name, DType: F32, Shape: p.Shape, F32: params[p.Name]})
			continue
		}
		for _, n := range []string{mod + ".weight", mod + ".bias"} {
			out = append(out, STensor{Name: n, DType: F32, Shape: shapes[n], F32: params[n]})
		}
		for _, n := range []string{mod + ".running_mean", mod + ".running_var"} {
			out = append(out, STensor{Name: n, DType: F32, Shape: shapes[n], F32: stats[n]})
		}
		out = append(out, STensor{Name: mod + ".num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{batchesTracked}})
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

// SaveCheckpoint writes the GAN's whole state as of step.
func SaveCheckpoint(runDir string, gan *engine.GAN, cfg Config, step int, elapsed float64) error {
	rel := filepath.Join(CheckpointsDir, fmt.Sprintf("step_%07d", step))
	dir := filepath.Join(runDir, rel)
	if err := os.RemoveAll(dir); err != nil { // a partial one from a crash
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": formatVersion, "step": strconv.Itoa(step), "config": string(cfgJSON)}
	get := func(ps *engine.ParamSet) (map[string][]float32, error) {
		v, err := ps.Get()
		if err != nil {
			return nil, fmt.Errorf("train: checkpoint: reading device state: %w", err)
		}
		// Never replace a good checkpoint with diverged weights.
		for name, vals := range v {
			for _, x := range vals {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("%w: %s holds %g at step %d; the previous checkpoint is kept", ErrNonFinite, name, x, step)
				}
			}
		}
		return v, nil
	}
	gp, err := get(gan.GP)
	if err != nil {
		return err
	}
	gs, err := get(gan.GS)
	if err != nil {
		return err
	}
	dp, err := get(gan.DP)
	if err != nil {
		return err
	}
	ds, err := get(gan.DS)
	if err != nil {
		return err
	}
	files := map[string][]STensor{
		GFile: netTensors(gan.G, gp, gs, batchesTracked(gan.G, step, cfg.DSteps)),
		DFile: netTensors(gan.D, dp, ds, batchesTracked(gan.D, step, cfg.DSteps)),
	}
	if gan.GEMA != nil {
		ge, err := get(gan.GEMA)
		if err != nil {
			return err
		}
		files[GEMAFile] = netTensors(gan.G, ge, gs, batchesTracked(gan.G, step, cfg.DSteps))
	}
	var opt []STensor
	for _, s := range []struct {
		prefix string
		net    *engine.Net
		ps     *engine.ParamSet
	}{{"G.m.", gan.G, gan.GM}, {"G.v.", gan.G, gan.GV}, {"D.m.", gan.D, gan.DM}, {"D.v.", gan.D, gan.DV}} {
		v, err := get(s.ps)
		if err != nil {
			return err
		}
		for _, p := range s.net.Params {
			opt = append(opt, STensor{Name: s.prefix + p.Name, DType: F32, Shape: p.Shape, F32: v[p.Name]})
		}
	}
	for _, c := range []struct {
		name string
		t    *engine.Tensor
	}{{"G.step", gan.GCounter}, {"D.step", gan.DCounter}} {
		v, err := c.t.CounterValue()
		if err != nil {
			return err
		}
		opt = append(opt, STensor{Name: c.name, DType: I64, Shape: []int{}, I64: []int64{int64(v)}})
	}
	files[OptimFile] = opt
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := WriteSafetensors(filepath.Join(dir, n), files[n], meta); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	info, err := json.MarshalIndent(CheckpointInfo{Format: formatVersion, Step: step, Dir: filepath.ToSlash(rel), Elapsed: elapsed}, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(runDir, CheckpointFile), append(info, '\n'), 0o644); err != nil {
		return err
	}
	// Convenience links for users; each replace is atomic on its own.
	for _, n := range []string{GFile, DFile, GEMAFile} {
		if _, ok := files[n]; !ok {
			continue
		}
		tmp := filepath.Join(runDir, "."+n+".tmp")
		_ = os.Remove(tmp)
		if err := os.Link(filepath.Join(dir, n), tmp); err == nil {
			err = os.Rename(tmp, filepath.Join(runDir, n))
		}
		if err != nil {
			// File systems without hard links get a copy.
			b, rerr := os.ReadFile(filepath.Join(dir, n))
			if rerr != nil {
				return fmt.Errorf("train: checkpoint: %w", rerr)
			}
			if err := WriteFileAtomic(filepath.Join(runDir, n), b, 0o644); err != nil {
				return err
			}
		}
	}
	pruneCheckpoints(runDir, step)
	return nil
}

// pruneCheckpoints keeps the newest checkpointsKept directories.
func pruneCheckpoints(runDir string, current int) {
	entries, err := os.ReadDir(filepath.Join(runDir, CheckpointsDir))
	if err != nil {
		return
	}
	var steps []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "step_")); err == nil && e.IsDir() && n <= current {
			steps = append(steps, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(steps)))
	for i, s := range steps {
		if i >= checkpointsKept {
			_ = os.RemoveAll(filepath.Join(runDir, CheckpointsDir, fmt.Sprintf("step_%07d", s)))
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
		return info, fmt.Errorf("train: %s: %w", path, err)
	}
	if info.Format != formatVersion {
		return info, fmt.Errorf("train: %s: checkpoint format %q, this vkgan reads %q", path, info.Format, formatVersion)
	}
	if info.Step < 0 || info.Dir == "" || strings.Contains(info.Dir, "..") {
		return info, fmt.Errorf("train: %s: invalid checkpoint record", path)
	}
	return info, nil
}

// netState checks a network file against the definition and returns its
// parameters and statistics by name.
func netState(path string, net *engine.Net) (params, stats map[string][]float32, err error) {
	ts, _, err := ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]STensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	take := func(specs []engine.ParamSpec) (map[string][]float32, error) {
		out := map[string][]float32{}
		for _, s := range specs {
			t, ok := byName[s.Name]
			if !ok {
				return nil, fmt.Errorf("train: %s: missing tensor %s", path, s.Name)
			}
			if t.DType != F32 || !slices.Equal(t.Shape, s.Shape) {
				return nil, fmt.Errorf("train: %s: tensor %s is %s %v, want F32 %v (a checkpoint of another model size?)", path, s.Name, t.DType, t.Shape, s.Shape)
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

// LoadGenerator loads G's weights and statistics (averaged ones with ema,
// when the checkpoint has them) from the run's current checkpoint.
func LoadGenerator(runDir string, gan *engine.GAN, ema bool) (CheckpointInfo, error) {
	info, err := ReadCheckpointInfo(runDir)
	if err != nil {
		return info, err
	}
	dir := filepath.Join(runDir, filepath.FromSlash(info.Dir))
	file := filepath.Join(dir, GFile)
	if ema {
		if _, err := os.Stat(filepath.Join(dir, GEMAFile)); err == nil {
			file = filepath.Join(dir, GEMAFile)
		}
	}
	gp, gs, err := netState(file, gan.G)
	if err != nil {
		return info, err
	}
	if err := gan.GP.Set(gp); err != nil {
		return info, err
	}
	return info, gan.GS.Set(gs)
}

// LoadCheckpoint restores the GAN's whole state from the run's current
// checkpoint.
func LoadCheckpoint(runDir string, gan *engine.GAN) (CheckpointInfo, error) {
	info, err := ReadCheckpointInfo(runDir)
	if err != nil {
		return info, err
	}
	dir := filepath.Join(runDir, filepath.FromSlash(info.Dir))
	gp, gs, err := netState(filepath.Join(dir, GFile), gan.G)
	if err != nil {
		return info, err
	}
	dp, ds, err := netState(filepath.Join(dir, DFile), gan.D)
	if err != nil {
		return info, err
	}
	sets := []struct {
		ps   *engine.ParamSet
		vals map[string][]float32
	}{{gan.GP, gp}, {gan.GS, gs}, {gan.DP, dp}, {gan.DS, ds}}
	if gan.GEMA != nil {
		ge := gp // a run that turned the average on at resume starts it from G
		if _, err := os.Stat(filepath.Join(dir, GEMAFile)); err == nil {
			if ge, _, err = netState(filepath.Join(dir, GEMAFile), gan.G); err != nil {
				return info, err
			}
		}
		sets = append(sets, struct {
			ps   *engine.ParamSet
			vals map[string][]float32
		}{gan.GEMA, ge})
	}
	optPath := filepath.Join(dir, OptimFile)
	ts, _, err := ReadSafetensors(optPath)
	if err != nil {
		return info, err
	}
	byName := map[string]STensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	for _, s := range []struct {
		prefix string
		net    *engine.Net
		ps     *engine.ParamSet
	}{{"G.m.", gan.G, gan.GM}, {"G.v.", gan.G, gan.GV}, {"D.m.", gan.D, gan.DM}, {"D.v.", gan.D, gan.DV}} {
		vals := map[string][]float32{}
		for _, p := range s.net.Params {
			t, ok := byName[s.prefix+p.Name]
			if !ok || t.DType != F32 || !slices.Equal(t.Shape, p.Shape) {
				return info, fmt.Errorf("train: %s: missing or mis-shaped tensor %s%s", optPath, s.prefix, p.Name)
			}
			vals[p.Name] = t.F32
		}
		sets = append(sets, struct {
			ps   *engine.ParamSet
			vals map[string][]float32
		}{s.ps, vals})
	}
	for _, s := range sets {
		if err := s.ps.Set(s.vals); err != nil {
			return info, err
		}
	}
	for _, c := range []struct {
		name string
		t    *engine.Tensor
	}{{"G.step", gan.GCounter}, {"D.step", gan.DCounter}} {
		t, ok := byName[c.name]
		if !ok || t.DType != I64 || len(t.I64) != 1 || t.I64[0] < 0 || t.I64[0] > 1<<32-1 {
			return info, fmt.Errorf("train: %s: missing or invalid counter %s", optPath, c.name)
		}
		if err := c.t.SetCounter(uint32(t.I64[0])); err != nil {
			return info, err
		}
	}
	return info, nil
}
