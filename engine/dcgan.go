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
	mult := c.Size / 8 // 64: 8, 4, 2, 1; 32: 4, 2, 1
	var layers []Layer
	cin, s, p := c.NZ, 1, 0
	for ; mult >= 1; mult /= 2 {
		layers = append(layers, ConvTranspose2d(cin, c.NGF*mult, 4, s, p, initStd), NewBatchNorm(c.NGF*mult, initStd), ReLU())
		cin, s, p = c.NGF*mult, 2, 1
	}
	layers = append(layers, ConvTranspose2d(cin, c.Channels, 4, 2, 1, initStd), Tanh())
	return NewNet("G", "main", NewSequential(layers...), []int{c.NZ, 1, 1})
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
	var layers []Layer
	cin, mult := c.Channels, 1
	for hw := c.Size; hw > 4; hw /= 2 {
		layers = append(layers, NewConv2d(cin, c.NDF*mult, 4, 2, 1, initStd))
		if len(layers) > 1 {
			layers = append(layers, NewBatchNorm(c.NDF*mult, initStd))
		}
		layers = append(layers, LeakyReLU(leakySlope))
		cin, mult = c.NDF*mult, mult*2
	}
	layers = append(layers, NewConv2d(cin, 1, 4, 1, 0, initStd))
	return NewNet("D", "main", NewSequential(layers...), []int{c.Channels, c.Size, c.Size})
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
