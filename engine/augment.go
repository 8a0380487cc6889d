package engine

import (
	"fmt"
	"slices"
	"strings"

	"vkgan/shaders"
)

// Differentiable augmentation (DiffAugment: Zhao et al. 2020,
// "Differentiable Augmentation for Data-Efficient GAN Training", policy
// "color,translation,cutout") plus a horizontal flip, applied to D's real
// and fake inputs alike; G's gradient flows back through it. With the same
// per-sample parameters the ops match the paper's DiffAugment_pytorch.py:
//
//   - flip: with probability 1/2, out[c,i,j] = in[c,i,W-1-j]
//   - color: brightness x+b, b in [-0.5, 0.5); saturation (x-m)*s+m with m
//     the mean over channels per pixel, s in [0, 2); contrast (x-M)*k+M
//     with M the mean over C,H,W per sample, k in [0.5, 1.5)
//   - translation: out[c,i,j] = in[c,i+tx,j+ty], 0 outside the image;
//     tx in [-sh, sh], ty in [-sw, sw], sh = int(H/8+0.5), sw = int(W/8+0.5)
//   - cutout: out = 0 on rows [ox-ch/2, ox-ch/2+ch) x columns
//     [oy-cw/2, oy-cw/2+cw) within the image, all channels; ch = int(H/2+0.5),
//     cw likewise, ox in [0, H+1-ch%2), oy in [0, W+1-cw%2)
//
// applied in that order. The reference clamps cutout's box into the image;
// for offsets it can draw the box always meets the image, so clamping and
// intersecting agree, and for offsets uploaded from elsewhere the kernel
// intersects (a box off the image cuts nothing).

// Augment says which augmentations are on. The zero value is none.
type Augment struct{ Color, Translation, Cutout, Flip bool }

// augmentNames are the names in the order the ops apply, matching on.
var augmentNames = []string{"flip", "color", "translation", "cutout"}

func (a Augment) on() []bool { return []bool{a.Flip, a.Color, a.Translation, a.Cutout} }

// ParseAugment reads a DiffAugment policy: a comma-separated subset of
// "color", "translation" and "cutout" in any order ("" for none; spaces
// around names are ignored). "flip" may also be listed; flip turns it on
// as well, so ParseAugment(a.String(), false) == a.
func ParseAugment(list string, flip bool) (Augment, error) {
	a := Augment{Flip: flip}
	if strings.TrimSpace(list) == "" {
		return a, nil
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if seen[name] {
			return Augment{}, fmt.Errorf("engine: augment: %q is listed twice in %q", name, list)
		}
		seen[name] = true
		switch name {
		case "color":
			a.Color = true
		case "translation":
			a.Translation = true
		case "cutout":
			a.Cutout = true
		case "flip":
			a.Flip = true
		default:
			return Augment{}, fmt.Errorf("engine: augment: unknown augmentation %q in %q; choose from color, translation, cutout, flip (comma-separated)", name, list)
		}
	}
	return a, nil
}

// String lists the enabled augmentations comma-separated in the order they
// apply, "flip,color,translation,cutout" with everything on, "" with
// nothing on. ParseAugment reads it back.
func (a Augment) String() string {
	var on []string
	for i, f := range a.on() {
		if f {
			on = append(on, augmentNames[i])
		}
	}
	return strings.Join(on, ",")
}

// Enabled reports whether any augmentation is on.
func (a Augment) Enabled() bool { return a.Color || a.Translation || a.Cutout || a.Flip }

// ops is the kernels' bit set: 1 color, 2 translation, 4 cutout, 8 flip.
func (a Augment) ops() uint32 {
	var o uint32
	for bit, on := range []bool{a.Color, a.Translation, a.Cutout, a.Flip} {
		if on {
			o |= 1 << bit
		}
	}
	return o
}

// AugmentParams is the number of per-sample parameters: row n of a
// [B, AugmentParams] tensor holds, in order,
//
//	0 b     brightness offset         (identity 0)
//	1 s     saturation factor         (identity 1)
//	2 k     contrast factor           (identity 1)
//	3 tx    row shift, an integer     (identity 0)
//	4 ty    column shift, an integer  (identity 0)
//	5 ox    cutout centre row         (identity -2^24: a box off the image)
//	6 oy    cutout centre column      (identity -2^24)
//	7 flip  1 flips the sample, 0 not (identity 0)
//
// Integers are exact floats; the kernels round to the nearest integer and
// flip on a value >= 0.5. An op switched off in Augment ignores its fields.
const AugmentParams = 8

// augmentOff is the identity value of ox and oy: off any image a tensor can
// hold, and exact in float32.
const augmentOff = -1 << 24

// maxAugmentSide bounds H and W so that every integer parameter and range
// is an exact float32 and the kernels' int arithmetic cannot overflow.
const maxAugmentSide = 1 << 23

// augmentShift is translation's largest shift for a side of n pixels,
// int(n*0.125 + 0.5).
func augmentShift(n int) int { return (n + 4) / 8 }

// augmentCut is cutout's box side for a side of n pixels, int(n*0.5 + 0.5).
func augmentCut(n int) int { return (n + 1) / 2 }

// augmentOffsets is the number of cutout offsets drawn for a side of n
// pixels: the reference's randint(0, n + (1 - size%2)).
func augmentOffsets(n int) int { return n + 1 - augmentCut(n)%2 }

// AugmentDraw fills params, [B, AugmentParams], with parameters for a
// batch of h x w images: those of a's enabled ops drawn uniformly from the
// ranges above, the rest at their identity values. The draws are
// counter-based Philox (as in RandUniform) keyed by seed, the value of
// counter and stream: give D's real pass, its fake pass and G's pass of one
// step different streams so they draw independently; a recording replayed
// after Increment(counter) draws new parameters, and rewinding the counter
// repeats them bit for bit.
func (r *Recorder) AugmentDraw(params *Tensor, a Augment, h, w int, seed uint64, counter *Counter, stream uint32) error {
	const op = "augment draw"
	err := func() error {
		if err := ewCheck(op, []string{"params", "counter"}, params, counter.tensor()); err != nil {
			return err
		}
		if len(params.shape) != 2 || params.shape[1] != AugmentParams {
			return fmt.Errorf("engine: %s: params %v, want [B, %d]", op, params.shape, AugmentParams)
		}
		if h < 1 || w < 1 || h > maxAugmentSide || w > maxAugmentSide {
			return fmt.Errorf("engine: %s: image size %dx%d, want each side in 1..%d", op, h, w, maxAugmentSide)
		}
		return nil
	}()
	if err != nil {
		return r.fail(err)
	}
	nb := params.shape[0]
	push := shaders.AugmentDrawPush{
		Nb: uint32(nb), Ops: a.ops(), SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), Stream: stream,
		ShiftH: uint32(augmentShift(h)), ShiftW: uint32(augmentShift(w)),
		OffH: uint32(augmentOffsets(h)), OffW: uint32(augmentOffsets(w)),
	}
	return dispatch(r, shaders.AugmentDraw, nil, r.gridGroups(nb, 64), push, params, counter.t)
}

// Augment records y = aug(x) for x and y distinct [B,C,H,W] tensors of one
// shape and params [B, AugmentParams] (from AugmentDraw or uploaded).
func (r *Recorder) Augment(y, x, params *Tensor, a Augment) error {
	return r.augment("augment", 0, y, x, params, a, [2]string{"y", "x"})
}

// AugmentBackward records dx = (d aug/dx)^T dy, overwriting dx, for the
// same params and a as the forward. aug is affine in x for fixed
// parameters (brightness adds b), so this is the transpose of its linear
// part and needs no saved activations.
func (r *Recorder) AugmentBackward(dx, dy, params *Tensor, a Augment) error {
	return r.augment("augment backward", 1, dx, dy, params, a, [2]string{"dx", "dy"})
}

// augment checks and records augment.comp in direction dir (0 forward,
// 1 backward) writing out from in.
func (r *Recorder) augment(op string, dir uint32, out, in, params *Tensor, a Augment, names [2]string) error {
	err := func() error {
		if err := ewCheck(op, []string{names[0], names[1], "params"}, out, in, params); err != nil {
			return err
		}
		if len(in.shape) != 4 {
			return fmt.Errorf("engine: %s: %s %v, want [B,C,H,W]", op, names[1], in.shape)
		}
		if !slices.Equal(out.shape, in.shape) {
			return fmt.Errorf("engine: %s: %s %v does not match %s %v", op, names[0], out.shape, names[1], in.shape)
		}
		if out.shares(in) {
			return fmt.Errorf("engine: %s: %s and %s share storage; the kernel reads pixels other than the one it writes", op, names[0], names[1])
		}
		if len(params.shape) != 2 || params.shape[0] != in.shape[0] || params.shape[1] != AugmentParams {
			return fmt.Errorf("engine: %s: params %v, want [%d, %d]", op, params.shape, in.shape[0], AugmentParams)
		}
		if params.shares(out) {
			return fmt.Errorf("engine: %s: params and %s share storage", op, names[0])
		}
		if h, w := in.shape[2], in.shape[3]; h > maxAugmentSide || w > maxAugmentSide {
			return fmt.Errorf("engine: %s: image size %dx%d, want each side at most %d", op, h, w, maxAugmentSide)
		}
		return nil
	}()
	if err != nil {
		return r.fail(err)
	}
	nb, c, h, w := in.shape[0], in.shape[1], in.shape[2], in.shape[3]
	push := shaders.AugmentPush{
		Nb: uint32(nb), C: uint32(c), H: uint32(h), W: uint32(w), Ops: a.ops(),
		Ch: uint32(augmentCut(h)), Cw: uint32(augmentCut(w)),
	}
	// One workgroup per sample; the kernel loops when the grid is capped.
	return dispatch(r, shaders.Augment, []uint32{dir}, r.gridGroups(nb, 1), push, out, in, params)
}
