// Package data turns a data set into the pixels a run uploads to the
// device: N square RGB images, uint8, NCHW (Dataset).
//
// A Source says where images come from: a Folder of PNG, JPEG, GIF, BMP
// and WebP files, or the Emoji set, which is fetched with npm on first
// use and checked against pinned hashes. Open maps a -data value to its
// source. Decoding runs on every CPU (centre crop, alpha over white,
// Catmull-Rom resize), and the decoded set is cached in one checked file
// per file list and size, so a second run starts in seconds.
//
// Nothing here touches the device: the caller uploads Dataset.Pixels once,
// and batches are gathered there.
package data
