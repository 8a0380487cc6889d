package engine

// The FID Inception: TensorFlow's 2015-12-05 Inception-v3 as the FID tools
// port it (pytorch-fid's fid_inception_v3, which torch-fidelity and
// clean-fid share): torchvision's Inception3 layout with 1008 classes, the
// FID variants of blocks A, C and E (average pools that do not count the
// padding; a max pool in the last E block's pool branch) and batch-norm eps
// 1e-3. The network here ends at the final average pool, the 2048-d
// feature FID and KID use; the classifier (fc.*) is not needed.
//
// Names are torchvision's state_dict names ("Mixed_5b.branch1x1.conv.weight"),
// so pytorch-fid's weight file loads by name.

// InceptionSide is the image side the network was trained at: pytorch-fid
// resizes every image to 299x299 first.
const InceptionSide = 299

// InceptionFeatures is the length of the feature vector (pool3).
const InceptionFeatures = 2048

const inceptionEps = 1e-3

// FIDInception returns the network for 3-channel images of side x side in
// [-1, 1]: a bilinear resize to 299x299 (pytorch-fid's preprocessing,
// which maps [0,1] images to 2x-1 after resizing; on [-1,1] images that is
// the resize alone), then the Inception-v3 trunk to its 2048-d pool.
func FIDInception(side int) (*Net, error) {
	conv := func(attr string, in, out, k, s, p int) Part {
		return Part{attr, NewBasicConv2d(in, out, k, k, s, s, p, p, inceptionEps)}
	}
	body := NewChain(
		Part{"", &Resize2d{Side: InceptionSide}},
		conv("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
		conv("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
		conv("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
		Part{"", MaxPool2d(3, 2, 0)},
		conv("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
		conv("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
		Part{"", MaxPool2d(3, 2, 0)},
		Part{"Mixed_5b", inceptionA(192, 32)},
		Part{"Mixed_5c", inceptionA(256, 64)},
		Part{"Mixed_5d", inceptionA(288, 64)},
		Part{"Mixed_6a", inceptionB(288)},
		Part{"Mixed_6b", inceptionC(768, 128)},
		Part{"Mixed_6c", inceptionC(768, 160)},
		Part{"Mixed_6d", inceptionC(768, 160)},
		Part{"Mixed_6e", inceptionC(768, 192)},
		Part{"Mixed_7a", inceptionD(768)},
		Part{"Mixed_7b", inceptionE(1280, false)},
		Part{"Mixed_7c", inceptionE(2048, true)},
		Part{"", &GlobalAvgPool2d{}},
	)
	return NewNet("Inception", "", body, []int{3, side, side})
}

// unit is a BasicConv2d part with a kh x kw kernel and padding (ph, pw).
func unit(attr string, in, out, kh, kw, ph, pw int) Part {
	return Part{attr, NewBasicConv2d(in, out, kh, kw, 1, 1, ph, pw, inceptionEps)}
}

// unitS2 is a 3x3 stride-2 unaligned unit (the grid reductions).
func unitS2(attr string, in, out int) Part {
	return Part{attr, NewBasicConv2d(in, out, 3, 3, 2, 2, 0, 0, inceptionEps)}
}

func branch(parts ...Part) Layer { return NewChain(parts...) }

// inceptionA is FIDInceptionA: 64 + 64 + 96 + poolFeatures channels.
func inceptionA(in, poolFeatures int) Layer {
	return NewConcat(
		branch(unit("branch1x1", in, 64, 1, 1, 0, 0)),
		branch(unit("branch5x5_1", in, 48, 1, 1, 0, 0), unit("branch5x5_2", 48, 64, 5, 5, 2, 2)),
		branch(unit("branch3x3dbl_1", in, 64, 1, 1, 0, 0), unit("branch3x3dbl_2", 64, 96, 3, 3, 1, 1),
			unit("branch3x3dbl_3", 96, 96, 3, 3, 1, 1)),
		branch(Part{"", AvgPool2d(3, 1, 1)}, unit("branch_pool", in, poolFeatures, 1, 1, 0, 0)),
	)
}

// inceptionB is torchvision's InceptionB (unchanged in the FID network):
// 384 + 96 + in channels at half the resolution.
func inceptionB(in int) Layer {
	return NewConcat(
		branch(unitS2("branch3x3", in, 384)),
		branch(unit("branch3x3dbl_1", in, 64, 1, 1, 0, 0), unit("branch3x3dbl_2", 64, 96, 3, 3, 1, 1),
			unitS2("branch3x3dbl_3", 96, 96)),
		branch(Part{"", MaxPool2d(3, 2, 0)}),
	)
}

// inceptionC is FIDInceptionC, with factorised 7x7 convolutions: 768
// channels.
func inceptionC(in, c7 int) Layer {
	return NewConcat(
		branch(unit("branch1x1", in, 192, 1, 1, 0, 0)),
		branch(unit("branch7x7_1", in, c7, 1, 1, 0, 0), unit("branch7x7_2", c7, c7, 1, 7, 0, 3),
			unit("branch7x7_3", c7, 192, 7, 1, 3, 0)),
		branch(unit("branch7x7dbl_1", in, c7, 1, 1, 0, 0), unit("branch7x7dbl_2", c7, c7, 7, 1, 3, 0),
			unit("branch7x7dbl_3", c7, c7, 1, 7, 0, 3), unit("branch7x7dbl_4", c7, c7, 7, 1, 3, 0),
			unit("branch7x7dbl_5", c7, 192, 1, 7, 0, 3)),
		branch(Part{"", AvgPool2d(3, 1, 1)}, unit("branch_pool", in, 192, 1, 1, 0, 0)),
	)
}

// inceptionD is torchvision's InceptionD: 320 + 192 + in channels at half
// the resolution.
func inceptionD(in int) Layer {
	return NewConcat(
		branch(unit("branch3x3_1", in, 192, 1, 1, 0, 0), unitS2("branch3x3_2", 192, 320)),
		branch(unit("branch7x7x3_1", in, 192, 1, 1, 0, 0), unit("branch7x7x3_2", 192, 192, 1, 7, 0, 3),
			unit("branch7x7x3_3", 192, 192, 7, 1, 3, 0), unitS2("branch7x7x3_4", 192, 192)),
		branch(Part{"", MaxPool2d(3, 2, 0)}),
	)
}

// inceptionE is FIDInceptionE_1 (average pool without the padding) or,
// with maxPool, FIDInceptionE_2 (the TensorFlow graph's max pool): 320 +
// 768 + 768 + 192 = 2048 channels.
func inceptionE(in int, maxPool bool) Layer {
	var pool Layer = AvgPool2d(3, 1, 1)
	if maxPool {
		pool = MaxPool2d(3, 1, 1)
	}
	return NewConcat(
		branch(unit("branch1x1", in, 320, 1, 1, 0, 0)),
		branch(unit("branch3x3_1", in, 384, 1, 1, 0, 0), Part{"", NewConcat(
			branch(unit("branch3x3_2a", 384, 384, 1, 3, 0, 1)),
			branch(unit("branch3x3_2b", 384, 384, 3, 1, 1, 0)),
		)}),
		branch(unit("branch3x3dbl_1", in, 448, 1, 1, 0, 0), unit("branch3x3dbl_2", 448, 384, 3, 3, 1, 1), Part{"", NewConcat(
			branch(unit("branch3x3dbl_3a", 384, 384, 1, 3, 0, 1)),
			branch(unit("branch3x3dbl_3b", 384, 384, 3, 1, 1, 0)),
		)}),
		branch(Part{"", pool}, unit("branch_pool", in, 192, 1, 1, 0, 0)),
	)
}
