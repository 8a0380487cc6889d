package engine

import "fmt"

// ConvParams are a 2D convolution's stride and zero padding. Zero strides
// mean 1.
type ConvParams struct {
	StrideH, StrideW int
	PadH, PadW       int
}

var errTODO = fmt.Errorf("engine: not implemented yet")

// Gemm records C = alpha*op(A)*op(B) + beta*C (+ bias[j] on every row when
// bias is non-nil), with op(X) = X or X^T. A, B, C are 2D.
func (r *Recorder) Gemm(c, a, b *Tensor, transA, transB bool, alpha, beta float32, bias *Tensor) error {
	return r.fail(errTODO)
}

// MatMul records C = A*B.
func (r *Recorder) MatMul(c, a, b *Tensor) error { return r.Gemm(c, a, b, false, false, 1, 0, nil) }

// Conv2D records y = conv(x, w): x [N,Cin,H,W], w [Cout,Cin,KH,KW], y [N,Cout,OH,OW].
func (r *Recorder) Conv2D(y, x, w *Tensor, p ConvParams) error { return r.fail(errTODO) }

// Conv2DBackwardData records dx = d conv / d x applied to dy.
func (r *Recorder) Conv2DBackwardData(dx, dy, w *Tensor, p ConvParams) error { return r.fail(errTODO) }

// Conv2DBackwardWeights records dw = d conv / d w applied to dy.
func (r *Recorder) Conv2DBackwardWeights(dw, dy, x *Tensor, p ConvParams) error { return r.fail(errTODO) }

// ConvTranspose2D records y = conv_transpose(x, w): x [N,Cin,H,W], w [Cin,Cout,KH,KW] (PyTorch layout).
func (r *Recorder) ConvTranspose2D(y, x, w *Tensor, p ConvParams) error {
	return r.Conv2DBackwardData(y, x, w, p)
}

// ConvTranspose2DBackwardData records dx for ConvTranspose2D: a convolution of dy with w.
func (r *Recorder) ConvTranspose2DBackwardData(dx, dy, w *Tensor, p ConvParams) error {
	return r.Conv2D(dx, dy, w, p)
}

// ConvTranspose2DBackwardWeights records dw for ConvTranspose2D.
func (r *Recorder) ConvTranspose2DBackwardWeights(dw, dy, x *Tensor, p ConvParams) error {
	return r.Conv2DBackwardWeights(dw, x, dy, p)
}
