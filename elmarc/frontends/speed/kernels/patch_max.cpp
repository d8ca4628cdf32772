// conv2d_max_freq as one register-tiled matrix product per frequency offset whose running maximum
// stays in registers: the library-call form pays a pass over each product block per offset for it.
// Compiled by elmarc/frontends/speed/native.py for the host (-march=native); VEC, the float lanes of one
// vector, comes from there. Plain C++ with GCC/Clang vector extensions, no other dependency.
#include <cstring>
#include <vector>

#ifndef VEC
#define VEC 8
#endif
#define MR 6                 // rows of a register tile
#define NV 2                 // vectors across a register tile: MR * NV accumulators + as many maxima
#define NR (VEC * NV)        // columns (filters) of a register tile

typedef float vf __attribute__((vector_size(VEC * 4)));
typedef float vf_unaligned __attribute__((vector_size(VEC * 4), aligned(4)));

extern "C" int patch_max_tile_rows() { return MR; }
extern "C" int patch_max_tile_columns() { return NR; }

// A: n_valid patch rows (row i at A + i * lda); the patch of offset f is the K values from f * kt.
// Bp: the weights packed per column tile, (tiles, K, NR).
// Rows [row0, row1) (row0 a multiple of MR), in chunks of mc rows that stay in cache across the tiles.
// Writes the maximum over the offsets either to out (ldo floats per row) or, when out is null,
// adds its ReLU to sums[clip] (clip = row / per_clip, ldo floats per clip); rows >= n_valid and
// columns >= n_columns (the last tile's padding) are not written.
extern "C" void patch_max(const float* A, long lda, long row0, long row1, long kt, long K, long offsets,
                          const float* Bp, long tiles, long mc, float* out, long ldo,
                          float* sums, long per_clip, long n_valid, long n_columns) {
    std::vector<float> tail(MR * lda);
    for (long chunk = row0; chunk < row1; chunk += mc) {
        long chunk_end = chunk + mc < row1 ? chunk + mc : row1;
        for (long tile = 0; tile < tiles; ++tile) {
            const float* B = Bp + tile * K * NR;
            for (long i = chunk; i < chunk_end; i += MR) {
                const float* base = A + i * lda;
                if (i + MR > n_valid) {   // the last, partial tile: its rows copied, the last repeated (never written)
                    for (int m = 0; m < MR; ++m)
                        std::memcpy(tail.data() + m * lda, A + (i + m < n_valid ? i + m : n_valid - 1) * lda, lda * sizeof(float));
                    base = tail.data();
                }
                vf run[MR][NV];
                for (long f = 0; f < offsets; ++f) {
                    vf acc[MR][NV];
#pragma GCC unroll 8
                    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; ++v) acc[m][v] = (vf){};
                    const float* a = base + f * kt;
                    for (long k = 0; k < K; ++k) {
                        vf b[NV];
#pragma GCC unroll 4
                        for (int v = 0; v < NV; ++v) b[v] = *(const vf*)(B + k * NR + v * VEC);
#pragma GCC unroll 8
                        for (int m = 0; m < MR; ++m) {
                            float am = a[m * lda + k];
#pragma GCC unroll 4
                            for (int v = 0; v < NV; ++v) acc[m][v] += b[v] * am;
                        }
                    }
                    if (f == 0) {
#pragma GCC unroll 8
                        for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
                            for (int v = 0; v < NV; ++v) run[m][v] = acc[m][v];
                    } else {            // a NaN wins, as in torch.maximum
#pragma GCC unroll 8
                        for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
                            for (int v = 0; v < NV; ++v)
                                run[m][v] = ((acc[m][v] > run[m][v]) | (acc[m][v] != acc[m][v])) ? acc[m][v] : run[m][v];
                    }
                }
                long valid = n_columns - tile * NR;   // columns of this tile that exist
                for (int m = 0; m < MR && i + m < n_valid; ++m) {
                    long row = i + m;
                    float* dst = out ? out + row * ldo + tile * NR : sums + (row / per_clip) * ldo + tile * NR;
                    vf value[NV];
                    for (int v = 0; v < NV; ++v) {
                        vf r = run[m][v], zero = (vf){};
                        value[v] = out ? r : ((r > zero) | (r != r)) ? r : zero;   // F.relu keeps a NaN
                    }
                    if (valid >= NR) {
                        for (int v = 0; v < NV; ++v) {
                            if (out) *(vf_unaligned*)(dst + v * VEC) = value[v];
                            else *(vf_unaligned*)(dst + v * VEC) += value[v];
                        }
                    } else {
                        for (long c = 0; c < valid; ++c) {
                            float x = value[c / VEC][c % VEC];
                            if (out) dst[c] = x; else dst[c] += x;
                        }
                    }
                }
            }
        }
    }
}
