/* Writes N JPEGs of SIZE x SIZE pixels (quality 90) into DIR, from seeded
 * random patterns (blurred noise over gradients, so that they compress and
 * decode like photographs rather than flat colour): the benchmark's data.
 *   prism-data-gen DIR N [SIZE]   (SIZE default 256) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <turbojpeg.h>

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void pattern(unsigned char *px, int size, uint64_t seed)
{
    uint64_t s = seed;
    int fx = (int)(next(&s) % 7) + 1, fy = (int)(next(&s) % 7) + 1;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int k = 0; k < 3; k++) {
                int v = (x * fx + y * fy + k * 85) % 256 + (int)(next(&s) % 48) - 24;
                px[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)k] =
                    (unsigned char)(v < 0     ? 0
                                    : v > 255 ? 255
                                              : v);
            }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: prism-data-gen DIR N [SIZE]\n");
        return 2;
    }
    int n = atoi(argv[2]), size = argc > 3 ? atoi(argv[3]) : 256;
    unsigned char *px = malloc((size_t)size * (size_t)size * 3);
    tjhandle tj = tjInitCompress();
    if (!px || !tj || n < 1 || size < 8)
        return 1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        unsigned char *jpeg = NULL;
        unsigned long len = 0;
        pattern(px, size, (uint64_t)i);
        snprintf(path, sizeof path, "%s/%06d.jpg", argv[1], i);
        FILE *f = NULL;
        if (tjCompress2(tj, px, size, 0, size, TJPF_RGB, &jpeg, &len, TJSAMP_420, 90, 0) != 0 ||
            !(f = fopen(path, "wb")) || fwrite(jpeg, 1, len, f) != len) {
            fprintf(stderr, "prism-data-gen: cannot write %s\n", path);
            return 1;
        }
        fclose(f);
        tjFree(jpeg);
    }
    tjDestroy(tj);
    free(px);
    return 0;
}
