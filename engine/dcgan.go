package engine

import (
	"fmt"
	"slices"
)

// DCGAN is the shape of the DCGAN in PyTorch's examples repository
// (dcgan/main.py): a generator of transposed convolutions with batch norm
// and ReLU ending in tanh, and a discriminator of strided convolutions with
// LeakyReLU(0.2) and batch norm on all but the first, ending in one logit.
// Size 64 is the example's model; each halving or doubling of the size
// takes one stage from or adds one to each network.
type DCGAN struct {
	Size     int // image side: 16, 32, 64, 128 or 256
	NZ       int // latent size (example: 100)
	NGF, NDF int // generator / discriminator width (example: 64)
	Channels int // image channels (3)
	// NoDNorm drops the batch norm after D's inner convolutions (-d-norm
	// none): spectral-norm models usually train D without it, and R1
	// needs D without it (its penalty is per image).
	NoDNorm bool
	// SN and SNG wrap every convolution of D (of G) in spectral norm,
	// as torch.nn.utils.spectral_norm does.
	SN, SNG bool
	// Classes, when positive, makes the model class-conditional: G takes
	// a learned embedding of ClassDim numbers per class concatenated to z
	// (state "embed.weight"), and D is a projection discriminator whose
	// class embedding ("embed.weight") is dotted with its last features.
	Classes, ClassDim int
}

// PyTorch's BatchNorm2d defaults and the example's LeakyReLU slope.
const (
	bnMomentum  = 0.1
	bnEps       = 1e-5
	leakySlope  = 0.2
	initStd     = 0.02 // N(0, 0.02) conv weights, N(1, 0.02) BN weights
	maxDCGANDim = 1 << 14
)

// DCGANSizes are the image sides a DCGAN can have: one up- or
// down-sampling stage per factor of 2 from 4x4.
var DCGANSizes = []int{16, 32, 64, 128, 256}

// Validate checks the shape.
func (c DCGAN) Validate() error {
	if !slices.Contains(DCGANSizes, c.Size) {
		return fmt.Errorf("engine: dcgan: image size %d must be one of %v", c.Size, DCGANSizes)
	}
	if c.Classes < 0 || c.Classes == 1 || c.Classes > maxDCGANDim || (c.Classes > 0 && (c.ClassDim < 1 || c.ClassDim > maxDCGANDim)) {
		return fmt.Errorf("engine: dcgan: %d classes with embeddings of %d: a conditional model needs 2..%d classes and an embedding size in 1..%d", c.Classes, c.ClassDim, maxDCGANDim, maxDCGANDim)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"nz", c.NZ}, {"ngf", c.NGF}, {"ndf", c.NDF}, {"channels", c.Channels}} {
		if v.v < 1 || v.v > maxDCGANDim {
			return fmt.Errorf("engine: dcgan: %s = %d must be in 1..%d", v.name, v.v, maxDCGANDim)
		}
	}
	return nil
}

// Generator returns G: a transposed convolution from the latent vector to
// 4x4, then one transposed convolution per factor of 2 up to Size, widths
// halving towards the image; batch norm and ReLU after each but the last,
// which ends in tanh. At Size 64 this is the example's Generator, with
// its state_dict names (main.0.weight, main.1.running_mean, ...).
func (c DCGAN) Generator() (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conv := func(in, out, s, p int) Layer {
		var l Layer = ConvTranspose2d(in, out, 4, s, p, initStd)
		if c.SNG {
			l = SpectralNorm(l)
		}
		return l
	}
	mult := c.Size / 8 // 64: 8, 4, 2, 1; 32: 4, 2, 1
	var layers []Layer
	cin, s, p := c.NZ+c.ClassDim*min(c.Classes, 1), 1, 0
	for ; mult >= 1; mult /= 2 {
		layers = append(layers, conv(cin, c.NGF*mult, s, p), NewBatchNorm(c.NGF*mult, initStd), ReLU())
		cin, s, p = c.NGF*mult, 2, 1
	}
	layers = append(layers, conv(cin, c.Channels, 2, 1), Tanh())
	main := NewSequential(layers...)
	if c.Classes > 0 {
		// G(z, y) = main(cat(z, embed(y))): the embedding is an attribute
		// beside main, so main keeps the example's names.
		return NewNet("G", "", NewChain(Part{"embed", ClassEmbedding(c.Classes, c.ClassDim)}, Part{"main", main}), []int{c.NZ, 1, 1})
	}
	return NewNet("G", "main", main, []int{c.NZ, 1, 1})
}

// Discriminator returns D: one strided convolution per factor of 2 from
// Size down to 4x4, widths doubling away from the image, LeakyReLU(0.2)
// after each and batch norm after all but the first, then a 4x4
// convolution to one logit per image (the example's Sigmoid is folded into
// the loss). At Size 64 this is the example's Discriminator.
func (c DCGAN) Discriminator() (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conv := func(in, out, s, p int) Layer {
		var l Layer = NewConv2d(in, out, 4, s, p, initStd)
		if c.SN {
			l = SpectralNorm(l)
		}
		return l
	}
	var layers []Layer
	cin, mult := c.Channels, 1
	for hw := c.Size; hw > 4; hw /= 2 {
		layers = append(layers, conv(cin, c.NDF*mult, 2, 1))
		if len(layers) > 1 && !c.NoDNorm {
			layers = append(layers, NewBatchNorm(c.NDF*mult, initStd))
		}
		layers = append(layers, LeakyReLU(leakySlope))
		cin, mult = c.NDF*mult, mult*2
	}
	last := conv(cin, 1, 1, 0)
	if c.Classes > 0 {
		// The projection: D(x, y) = last(h) + embed(y) . sum_spatial(h).
		last = Projection(last, c.Classes, "embed.weight")
	}
	layers = append(layers, last)
	return NewNet("D", "main", NewSequential(layers...), []int{c.Channels, c.Size, c.Size})
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
