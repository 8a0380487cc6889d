// Package progress reports how far a long job has got: on a terminal a
// bar redrawn in place with rate and ETA, in a log a plain line every few
// seconds. Decoding a data set, unpacking the emoji set and training all
// report through it.
package progress
