/* The ceiling: a hand-written C thread pool doing the benchmark's work on
 * every core with libjpeg-turbo: read each JPEG, decode the rows of a crop
 * of 224 x 224 drawn at random (as Prism's fused run does), cut it, flip it
 * left-right with probability 0.5, and put it in a batch of 256 that a
 * consumer reads whole (every byte summed). Prints one JSON line.
 *   prism-data-pool DIR THREADS */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jpeglib.h> /* after stdio.h: it names FILE */

#define CROP 224
#define BATCH 256
#define IMG ((size_t)CROP * CROP * 3)

static char **files;
static size_t nfiles;
static atomic_size_t next_file;
static uint8_t *bufs[2]; /* two batches: the workers fill bufs[cur], the consumer reads the other */
static int cur;
static size_t filled, taken;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Decodes, crops and flips image i into `out`: only the crop's rows are
 * decoded (the rows above skipped, those below not read) into `px`. A
 * corrupt file ends the program (libjpeg's error handler). */
static int prepare(struct jpeg_decompress_struct *d, size_t i, uint8_t *px, size_t cap,
                   uint8_t *out, unsigned *seed)
{
    size_t len;
    uint8_t *jpeg = slurp(files[i], &len);
    if (!jpeg)
        return -1;
    jpeg_mem_src(d, jpeg, (unsigned long)len);
    jpeg_read_header(d, TRUE);
    d->out_color_space = JCS_RGB;
    int w = (int)d->image_width, h = (int)d->image_height;
    if ((size_t)w * CROP * 3 > cap || w < CROP || h < CROP) {
        jpeg_abort_decompress(d);
        free(jpeg);
        return -1;
    }
    int y0 = rand_r(seed) % (h - CROP + 1), x0 = rand_r(seed) % (w - CROP + 1);
    int flip = rand_r(seed) & 1;
    jpeg_start_decompress(d);
    if (y0 > 0)
        jpeg_skip_scanlines(d, (JDIMENSION)y0);
    while ((int)d->output_scanline < y0 + CROP) {
        JSAMPROW row = px + (size_t)((int)d->output_scanline - y0) * (size_t)w * 3;
        jpeg_read_scanlines(d, &row, 1);
    }
    jpeg_abort_decompress(d);
    free(jpeg);
    for (int y = 0; y < CROP; y++) {
        const uint8_t *src = px + ((size_t)y * (size_t)w + (size_t)x0) * 3;
        uint8_t *dst = out + (size_t)y * CROP * 3;
        if (!flip) {
            memcpy(dst, src, CROP * 3);
            continue;
        }
        for (int x = 0; x < CROP; x++)
            memcpy(dst + (size_t)(CROP - 1 - x) * 3, src + (size_t)x * 3, 3);
    }
    return 0;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr jerr;
    d.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&d);
    size_t cap = (size_t)4096 * CROP * 3;
    uint8_t *px = malloc(cap), *img = malloc(IMG);
    for (size_t i; (i = atomic_fetch_add(&next_file, 1)) < nfiles;) {
        if (prepare(&d, i, px, cap, img, &seed) != 0) {
            fprintf(stderr, "prism-data-pool: cannot decode %s\n", files[i]);
            exit(1);
        }
        pthread_mutex_lock(&lock);
        while (filled == BATCH) /* the consumer has not taken the batch yet */
            pthread_cond_wait(&changed, &lock);
        memcpy(bufs[cur] + filled * IMG, img, IMG);
        filled++;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    free(px);
    free(img);
    jpeg_destroy_decompress(&d);
    return NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: prism-data-pool DIR THREADS\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    /* from the listing on, as the other peers' reads list their files */
    double t0 = now(), first = 0;
    DIR *d = opendir(argv[1]);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".jpg"))
            continue;
        files = realloc(files, (nfiles + 1) * sizeof *files);
        if (asprintf(&files[nfiles], "%s/%s", argv[1], e->d_name) < 0)
            return 1;
        nfiles++;
    }
    if (d)
        closedir(d);
    qsort(files, nfiles, sizeof *files, by_name);
    bufs[0] = malloc(BATCH * IMG);
    bufs[1] = malloc(BATCH * IMG);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    uint64_t sum = 0;
    size_t batches = 0;
    while (taken < nfiles) {
        pthread_mutex_lock(&lock);
        size_t want = nfiles - taken < BATCH ? nfiles - taken : BATCH;
        while (filled < want)
            pthread_cond_wait(&changed, &lock);
        const uint8_t *full = bufs[cur];
        size_t n = filled;
        cur ^= 1;
        filled = 0;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
        for (size_t i = 0; i < n * IMG; i++) /* the consumer touches every byte */
            sum += full[i];
        taken += n;
        batches++;
        if (batches == 1)
            first = now() - t0;
    }
    double secs = now() - t0;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    free(t);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    free(bufs[0]);
    free(bufs[1]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"peer\": \"C thread pool (%d threads)\", \"images\": %zu, \"seconds\": %.3f, "
           "\"images_per_s\": %.1f, \"mb_per_s\": %.1f, \"first_batch_s\": %.3f, "
           "\"peak_rss_mb\": %.1f, \"cpu_s\": %.3f, \"checksum\": %llu}\n",
           threads, nfiles, secs, (double)nfiles / secs, (double)nfiles * IMG / secs / 1e6, first,
           (double)ru.ru_maxrss / 1024,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
           (unsigned long long)sum);
    return 0;
}
