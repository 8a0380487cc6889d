// Package grid lays out G's samples as image grids, as torchvision's
// save_image does: a black border around and between the cells, tanh
// outputs in [-1, 1] mapped to bytes. Image builds the grid on the host
// from downloaded samples; Write and WriteStrip write it as a PNG file,
// atomically. A run's sample grids, `vkgan sample` and the viewer's
// tests all draw through it; engine's present kernel draws the same
// grid on the device for the window.
package grid
