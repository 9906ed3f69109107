/* The rows of the all-to-all benchmark (bench/data/alltoall.sh): row `id`
 * is a pure function of id, so Prism's package (rows_fns.c), the C ceiling
 * (alltoall_ceiling.c) and Dask (alltoall_dask.py, the same arithmetic in
 * numpy) make the same rows. 96 bytes a row: key and group (int64) and ten
 * float64 values. */
#ifndef PRISM_BENCH_ROWS_H
#define PRISM_BENCH_ROWS_H

#include <stdint.h>

#define ROWS_VALUES 10
#define ROWS_GROUPS 1000
#define ROWS_BYTES (8 * (2 + ROWS_VALUES))

typedef struct rows_row {
    int64_t key, group;
    double v[ROWS_VALUES];
} rows_row;

/* splitmix64: a well-mixed 64-bit hash. */
static inline uint64_t rows_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline void rows_make(int64_t id, int64_t groups, rows_row *out)
{
    uint64_t h = rows_mix((uint64_t)id);
    out->key = (int64_t)(h >> 1); /* non-negative: the same order in every engine */
    out->group = (int64_t)(rows_mix(h) % (uint64_t)groups);
    for (int j = 0; j < ROWS_VALUES; j++)
        out->v[j] = (double)((h >> (j * 4)) & 0xffff) / 65536.0 + j;
}

#endif
