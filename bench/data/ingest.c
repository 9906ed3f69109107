/* Prism's side of the benchmark: the same work as prism-data-pool as a
 * dataset, through include/prism/data.h: read_binary_files of DIR ->
 * decode_image -> random_crop 224 x 224 -> flip (p 0.5) -> batches of 256
 * streamed to this driver, which touches every byte of each. With
 * "normalize", a last normalize to float32 (ImageNet's mean and std).
 * Prints one JSON line (cpu_s: this driver's CPU time, user and system;
 * run.sh adds the cluster's).
 *   prism-data-ingest DIR [normalize] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <prism/data.h>
#include <prism/prism.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The sum of n floats in 16 lanes: a loop the compiler vectorizes without
 * reordering additions (one running sum waits on each add, and cost this
 * driver 1 s of 10,000 images; DataLoader's tensor sum is vectorized). */
static double sum_floats(const float *f, size_t n)
{
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += f[i + l];
    double sum = 0;
    for (; i < n; i++)
        sum += f[i];
    for (int l = 0; l < 16; l++)
        sum += lane[l];
    return sum;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != PRISM_OK) {                                                                  \
            fprintf(stderr, "prism-data-ingest: %s: %s\n", #call, prism_last_error());             \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: prism-data-ingest DIR [normalize]\n");
        return 2;
    }
    bool norm = argc > 2 && !strcmp(argv[2], "normalize");
    prism_client *c;
    TRY(prism_connect(NULL, &c));
    const char *paths[] = {argv[1], NULL};
    prism_dataset *ds;
    double t0 = now(), first = 0;
    TRY(prism_data_read_binary_files(c, paths, NULL, &ds));
    prism_data_map_options mo = PRISM_DATA_MAP_OPTIONS_INIT;
    mo.batch_size = 0; /* whole blocks: the builtins work on any number of rows */
    TRY(prism_data_map_batches(ds, "builtin", "decode_image", &mo));
    mo.args = "{\"size\": [224, 224]}";
    TRY(prism_data_map_batches(ds, "builtin", "random_crop", &mo));
    mo.args = "{\"p\": 0.5}";
    TRY(prism_data_map_batches(ds, "builtin", "flip", &mo));
    if (norm) {
        mo.args = "{\"mean\": [123.7, 116.3, 103.5], \"std\": [58.4, 57.1, 57.4]}";
        TRY(prism_data_map_batches(ds, "builtin", "normalize", &mo));
    }
    prism_data_iter *it;
    TRY(prism_data_iter_batches(ds, 256, NULL, &it));
    prism_batch *b;
    uint64_t sum = 0;
    double fsum = 0;
    size_t images = 0, bytes = 0;
    prism_status s;
    while ((s = prism_data_iter_next(it, &b)) == PRISM_OK && b) {
        prism_dtype dt;
        int ndim;
        int64_t shape[PRISM_MAX_DIMS];
        const void *v =
            prism_batch_values(b, (size_t)prism_batch_column_index(b, "image"), &dt, &ndim, shape);
        size_t n = prism_batch_rows(b) * (size_t)(shape[0] * shape[1] * shape[2]);
        if (!v || ndim != 3) {
            fprintf(stderr, "prism-data-ingest: a batch without images\n");
            return 1;
        }
        if (dt == PRISM_U8)
            for (size_t i = 0; i < n; i++)
                sum += ((const uint8_t *)v)[i];
        else
            fsum += sum_floats(v, n);
        images += prism_batch_rows(b);
        bytes += n * prism_dtype_size(dt);
        if (!first)
            first = now() - t0;
        prism_batch_free(b);
    }
    TRY(s);
    double secs = now() - t0;
    prism_data_iter_destroy(it);
    prism_data_destroy(ds);
    prism_disconnect(c);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"peer\": \"Prism%s\", \"images\": %zu, \"seconds\": %.3f, \"images_per_s\": %.1f, "
           "\"mb_per_s\": %.1f, \"first_batch_s\": %.3f, \"peak_rss_mb\": %.1f, "
           "\"cpu_s\": %.3f, \"checksum\": %llu}\n",
           norm ? " (float32 normalized)" : "", images, secs, (double)images / secs,
           (double)bytes / secs / 1e6, first, (double)ru.ru_maxrss / 1024,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
           (unsigned long long)sum + (unsigned long long)fsum);
    return 0;
}
