// Package toy is the talk's picture: small MLP GANs trained on 2D
// Gaussian mixtures (ring8, grid25, spiral), measured by the mode
// coverage metrics of the mode-collapse papers, and drawn frame by frame
// as D's region (a blue field) with the collected points and G's samples.
//
// Run trains one configuration on the device through engine.ToyGAN and
// writes toy.json (Result), samples.csv, frames/step-*.png and toy.gif.
// The host waits for the device once per step; it reads G's samples and
// D's field back only for a frame, every Options.FrameEvery steps. With
// Config.DRS it also measures G's samples filtered by D's rejection
// sampling.
//
// Protocols and results: docs/TOY.md.
package toy
