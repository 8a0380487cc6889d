// permute.glsl: the per-epoch permutation of a data set's N images that
// gather_u8.comp (the images) and gather_labels.comp (their labels) both
// walk, kept in one place so that a batch and its labels always name the
// same images. Not a kernel (gen.go compiles *.comp only): #included.
//
// A Feistel network on the smallest even number of bits covering N,
// cycle-walked into [0, N): a bijection that needs no storage and depends
// only on (seed, epoch), so a step is reproducible from the step counter.

uint permHash(uint x) {
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

// permute maps position i < n of epoch to an image index < n; halfBits
// is half the Feistel width (engine/data.go computes it).
uint permute(uint i, uint epoch, uint n, uint halfBits, uint seedLo, uint seedHi) {
    uint mask = (1u << halfBits) - 1u;
    uint key = permHash(seedLo ^ permHash(seedHi + 0x9e3779b9U * (epoch + 1u)));
    uint x = i;
    // Cycle-walk: apply the permutation of [0, 4^halfBits) until the
    // value falls in [0, n). It always terminates (x's cycle contains i);
    // the cap only guards against a bug.
    for (uint walk = 0; walk < 4096u; ++walk) {
        uint l = x >> halfBits, r = x & mask;
        for (uint round = 0; round < 4u; ++round) {
            uint f = permHash(r ^ permHash(key + round)) & mask;
            uint t = l ^ f;
            l = r;
            r = t;
        }
        x = (l << halfBits) | r;
        if (x < n) return x;
    }
    return i;
}

// batchImage is the image at row row of global batch number counter
// (global batches of size global): position counter*global + row of the
// endless sequence of epochs. A data-parallel rank passes its shard's
// first row plus its own row, so the ranks' rows together are the
// single-process batch. The position wraps after 2^32 images; epochs stay
// distinct long before.
uint batchImage(uint counter, uint global, uint row, uint n, uint halfBits, uint seedLo, uint seedHi) {
    uint pos = counter * global + row;
    uint epoch = pos / n;
    return permute(pos - epoch * n, epoch, n, halfBits, seedLo, seedHi);
}
