#version 450
// counter: c[0] += 1, where c holds a uint32 step counter.
layout(local_size_x = 1) in;
layout(std430, binding = 0) buffer C { uint c[]; };
void main() { c[0] += 1u; }
