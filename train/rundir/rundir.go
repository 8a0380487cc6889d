package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"vkgan/internal/atomicfile"
	"vkgan/internal/dirlock"
)

// A run directory is a run only when it has checkpoint.json. A new run
// takes an empty (or missing) directory and writes its step-0 checkpoint
// before its first step, so it is a run from then on. checkpoints/ without
// checkpoint.json is a damaged run: -resume recovers it, a new run is
// refused. Anything else that is not empty is someone else's folder.

// CheckNew refuses a directory that is not free for a new run, with what
// is in it and what to do instead. Someone else's folder gives an error
// that is ErrNotRunDir; a run, or a damaged one, an error that says to
// resume it.
func CheckNew(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: -out %q: %w", out, err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != dirlock.FileName {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil
	}
	has := func(n string) bool {
		_, err := os.Lstat(filepath.Join(out, n))
		return err == nil
	}
	switch {
	case has(CheckpointFile):
		return fmt.Errorf("train: %q already holds a run: continue it with -resume %q, or choose another -out", out, out)
	case len(checkpointSteps(out)) > 0:
		return fmt.Errorf("train: %q holds a damaged run (%s/ without %s): recover it with -resume %q, or choose another -out", out, CheckpointsDir, CheckpointFile, out)
	}
	shown := names
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	quoted := make([]string, len(shown))
	for i, n := range shown {
		quoted[i] = fmt.Sprintf("%q", n)
		if i == 5 {
			quoted[i] = n
		}
	}
	return fmt.Errorf("%w: -out %q is not empty and holds no run (%s): choose another -out, or -resume a run", ErrNotRunDir, out, strings.Join(quoted, ", "))
}

// Resume is a resume checked in full before anything is written.
type Resume struct {
	Config     Config      // the run's configuration with the flags of this resume applied
	Checkpoint *Checkpoint // the newest intact checkpoint, read whole: the state to go on from
	Elapsed    float64     // seconds of training up to the checkpoint's step
	NothingNew bool        // the run is at its step count and no more steps were asked for

	current   *CheckpointInfo // checkpoint.json, nil when missing or damaged
	change    *ConfigChange   // the settings this resume changes, nil for none
	dataMoved bool            // -data names another folder, which must hold the same images
}

// PlanResume reads and checks a run for a resume: its configuration, its
// newest intact checkpoint, and the flags given on the command line (set
// names them; given holds their values; steps > 0 is a new total). It
// writes nothing.
func PlanResume(out string, given Config, set map[string]bool, steps int, warn func(string)) (*Resume, error) {
	if _, err := os.Stat(out); err != nil {
		return nil, fmt.Errorf("train: -resume %q: %w", out, err)
	}
	saved, err := ReadRunConfig(out, warn)
	if err != nil {
		return nil, fmt.Errorf("train: -resume %q: %w", out, err)
	}
	ckpt, current, err := FindCheckpoint(out, saved, warn)
	if err != nil {
		return nil, fmt.Errorf("train: -resume %q: %w", out, err)
	}
	p := &Resume{Checkpoint: ckpt, current: current}
	if current != nil && current.Step == ckpt.Step {
		p.Elapsed = current.Elapsed
	}
	if steps != 0 {
		if steps < ckpt.Step {
			return nil, fmt.Errorf("train: -steps %d: the run is at step %d already; give a total above it", steps, ckpt.Step)
		}
		given.Steps = steps
		set["steps"] = true
	}
	cfg, change, err := applyResumeFlags(saved, given, set, ckpt.Step)
	if err != nil {
		return nil, err
	}
	p.Config, p.change = cfg, change
	p.dataMoved = set["data"] && given.Data != saved.Data
	p.NothingNew = ckpt.Step >= cfg.Steps
	if !p.dataMoved && cfg.Data != "emoji" {
		if _, err := os.Stat(cfg.Data); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("train: the run's data folder %q is gone (moved or deleted): give its new place with -resume %q -data DIR; it must hold the same images", cfg.Data, out)
		}
	}
	return p, nil
}

// applyResumeFlags applies the flags given on resume to the saved
// configuration: a flag that changes a fixed setting (the model, the loss,
// the data order) is an error, one line each; the others are applied and
// recorded.
func applyResumeFlags(saved, given Config, set map[string]bool, step int) (Config, *ConfigChange, error) {
	cfg := saved
	ch := &ConfigChange{Step: step, Time: time.Now().UTC().Format(time.RFC3339), Was: map[string]any{}, Set: map[string]any{}}
	var errs []error
	sv, gv, cv := reflect.ValueOf(saved), reflect.ValueOf(given), reflect.ValueOf(&cfg).Elem()
	for i := range sv.NumField() {
		f := sv.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		flag := strings.ReplaceAll(name, "_", "-")
		kind := f.Tag.Get("resume")
		if !set[flag] || kind == "-" {
			continue
		}
		was, now := sv.Field(i).Interface(), gv.Field(i).Interface()
		if reflect.DeepEqual(was, now) {
			continue
		}
		if kind == "fixed" {
			errs = append(errs, fmt.Errorf("train: -%s %v: the run was trained with -%s %v, which a resume cannot change (start a new run with another -out)", flag, now, flag, was))
			continue
		}
		cv.Field(i).Set(gv.Field(i))
		ch.Was[flag], ch.Set[flag] = was, now
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, nil, err
	}
	if len(ch.Set) == 0 {
		return cfg, nil, nil
	}
	cfg.History = append(append([]ConfigChange(nil), saved.History...), *ch)
	return cfg, ch, nil
}

// CheckData compares a resumed run's data, n images with hash got
// (data.Dataset.Hash), with the set it began with. A run from before data
// hashes takes this set as its own from now on.
func (p *Resume) CheckData(got string, n int, out string) error {
	switch {
	case p.Config.DataHash == "":
		p.Config.DataHash = got // a run from before data hashes: this set is its set from now on
	case got == p.Config.DataHash:
	case p.dataMoved:
		return fmt.Errorf("train: -data %q holds other images than the run was trained on (%d images; hash %.12s, the run's %.12s): give the folder the run began with", p.Config.Data, n, got, p.Config.DataHash)
	default:
		return fmt.Errorf("train: the images in %q changed since the run began (%d images; hash %.12s, the run's %.12s): restore them to continue %q, or start a new run", p.Config.Data, n, got, p.Config.DataHash, out)
	}
	return nil
}

// Commit makes the resume's state on disk agree with the checkpoint it
// loaded, once loading has succeeded: metrics after its step are dropped,
// a checkpoint.json that named a damaged checkpoint names the intact one
// (the damaged one is moved aside to step_N.damaged), and config.json gets
// the configuration with this resume's changes.
func (p *Resume) Commit(out string, warn func(string)) error {
	bad, err := TruncateMetricsAfter(filepath.Join(out, MetricsFile), p.Checkpoint.Step)
	if err != nil {
		return err
	}
	if bad > 0 {
		warn(fmt.Sprintf("dropped %d damaged lines from %q", bad, filepath.Join(out, MetricsFile)))
	}
	if p.current == nil || p.current.Step != p.Checkpoint.Step {
		rel, err := filepath.Rel(out, p.Checkpoint.Dir)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := setCurrent(out, CheckpointInfo{Format: formatVersion, Step: p.Checkpoint.Step, Dir: filepath.ToSlash(rel), Elapsed: p.Elapsed}); err != nil {
			return err
		}
		for _, s := range checkpointSteps(out) {
			if s <= p.Checkpoint.Step {
				continue
			}
			from := filepath.Join(out, CheckpointsDir, stepDirName(s))
			to := from + damagedSuffix
			if _, err := os.Lstat(to); err == nil {
				to = fmt.Sprintf("%s-%d", to, time.Now().UnixNano())
			}
			atomicfile.BeforeChange("resume: move damaged aside")
			if err := os.Rename(from, to); err != nil {
				return fmt.Errorf("train: %w", err)
			}
			warn(fmt.Sprintf("moved the checkpoint after step %d aside to %q", p.Checkpoint.Step, to))
		}
	}
	return p.Config.Save(filepath.Join(out, ConfigFile))
}
