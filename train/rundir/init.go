package rundir

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"vkgan/engine"
	"vkgan/internal/safetensors"
)

// InitNet loads a network's starting weights for a new run (-init-g,
// -init-d) from a safetensors file with PyTorch state_dict names: a model
// trained in PyTorch and saved with safetensors.torch.save_file, or a
// vkgan run's G.safetensors or D.safetensors. Every parameter and running
// statistic of the network must be there with its shape; the file may
// also hold batch norm's num_batches_tracked counters, and nothing else.
// All problems are reported at once, one line each. The average of the
// weights (EMA) starts from the loaded weights.
func InitNet(path string, ns *engine.NetState) error {
	ts, _, err := safetensors.ReadFile(path)
	if err != nil {
		return fmt.Errorf("train: -init-%s: %w", strings.ToLower(ns.Net.Name), err)
	}
	byName := map[string]safetensors.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	var errs []error
	problem := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("train: -init-%s %q: "+format, append([]any{strings.ToLower(ns.Net.Name), path}, args...)...))
	}
	take := func(specs []engine.ParamSpec) map[string][]float32 {
		out := map[string][]float32{}
		for _, s := range specs {
			t, ok := byName[s.Name]
			delete(byName, s.Name)
			switch {
			case !ok:
				problem("has no tensor %s (%v)", s.Name, s.Shape)
			case t.DType != safetensors.F32:
				problem("tensor %s is %s, want F32", s.Name, t.DType)
			case !slices.Equal(t.Shape, s.Shape):
				problem("tensor %s is %v, the model's is %v", s.Name, t.Shape, s.Shape)
			case nonFinite(t.F32) >= 0:
				problem("tensor %s holds %g at index %d", s.Name, t.F32[nonFinite(t.F32)], nonFinite(t.F32))
			default:
				out[s.Name] = t.F32
			}
		}
		return out
	}
	params, stats := take(ns.Net.Params), take(ns.Net.Stats)
	for _, bn := range ns.Net.BatchNorms() {
		delete(byName, bn+".num_batches_tracked")
	}
	extra := make([]string, 0, len(byName))
	for name := range byName {
		extra = append(extra, name)
	}
	slices.Sort(extra)
	for _, name := range extra {
		problem("tensor %s is not in the model %s (another architecture, or other -sn, -d-norm, -cond settings?)", name, ns.Net.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, s := range []struct {
		ps   *engine.ParamSet
		vals map[string][]float32
	}{{ns.Params, params}, {ns.EMA, params}, {ns.Stats, stats}} {
		if s.ps == nil {
			continue
		}
		if err := s.ps.Set(s.vals); err != nil {
			return fmt.Errorf("train: -init-%s: %w", strings.ToLower(ns.Net.Name), err)
		}
	}
	return nil
}
