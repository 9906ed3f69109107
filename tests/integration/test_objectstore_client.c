/* A small client of prism-objectstore for the integration tests: runs the
 * commands given on the command line against the store's Unix socket and
 * prints one line per command, "OK ..." or "ERR <status> <message>".
 *
 *   prism-objectstore-testclient [--lazy] SOCKET CMD [ARGS] [-- CMD [ARGS]]...
 *
 *   --lazy                   connect with prism_store_connect_lazy
 *
 *   put ID SIZE SEED [pin]   create + fill with a pattern + seal; prints sha256
 *   get ID [TIMEOUT_MS]      get + hash + release; prints size and sha256
 *   fill PREFIX N SIZE       put N pinned objects (IDs PREFIX + index), then get
 *                            them all back and check their patterns
 *   create-hang ID SIZE      create, write half, print, then sleep (to be killed)
 *   hold ID                  get, print, then sleep holding the reference
 *   wait ID TIMEOUT_MS       a get that waits; prints its status
 *   contains ID | delete ID | pin ID | unpin ID | abort ID | stats
 *   stress N SEED            N rounds of put/get/release/delete of random sizes
 *   rss                      the arena's pages mapped in this process, in KiB
 *   sleep MS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prism_sha256.h"
#include "prism_store.h"

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void pattern(uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = splitmix(seed ^ i);
        memcpy(p + i, &w, 8);
    }
    uint64_t w = splitmix(seed ^ i);
    memcpy(p + i, &w, n - i);
}

static int check(const uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = splitmix(seed ^ i);
        if (memcmp(p + i, &w, 8) != 0)
            return -1;
    }
    uint64_t w = splitmix(seed ^ i);
    return memcmp(p + i, &w, n - i) == 0 ? 0 : -1;
}

static void sha(const uint8_t *p, uint64_t n, char out[65])
{
    prism_sha256_ctx c;
    uint8_t d[32];
    prism_sha256_init(&c);
    prism_sha256_update(&c, p, n);
    prism_sha256_final(&c, d);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int parse_id(const char *hex, prism_object_id *id)
{
    if (prism_object_id_from_hex(id, hex) != 0) {
        printf("ERR INVALID bad object id %s\n", hex);
        return -1;
    }
    return 0;
}

static void indexed_id(const char *prefix, uint32_t i, prism_object_id *id)
{
    char hex[41];
    snprintf(hex, sizeof hex, "%.32s%08x", prefix, i);
    prism_object_id_from_hex(id, hex);
}

static int err(prism_store *st, prism_store_status s)
{
    printf("ERR %d %s\n", (int)s, prism_store_last_error(st));
    fflush(stdout);
    return 1;
}

static int cmd_put(prism_store *st, prism_object_id *id, uint64_t size, uint64_t seed, bool pin,
                   const prism_id *owner)
{
    uint8_t *p;
    prism_store_status s = prism_store_create(st, id, owner, size, "application/x-test", 18,
                                              pin ? PRISM_STORE_PIN : 0, &p);
    if (s != PRISM_STORE_OK)
        return err(st, s);
    pattern(p, size, seed);
    char h[65];
    sha(p, size, h);
    if ((s = prism_store_seal(st, id)) != PRISM_STORE_OK)
        return err(st, s);
    printf("OK sha256=%s\n", h);
    return 0;
}

/* prism_store_put: the bytes travel in the request (up to 256 KiB) */
static int cmd_put_small(prism_store *st, prism_object_id *id, uint64_t size, uint64_t seed)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return err(st, PRISM_STORE_ERROR);
    pattern(p, size, seed);
    char h[65];
    sha(p, size, h);
    prism_store_status s = prism_store_put(st, id, NULL, p, size, "application/x-test", 18, 0);
    free(p);
    if (s != PRISM_STORE_OK)
        return err(st, s);
    printf("OK sha256=%s\n", h);
    return 0;
}

static int cmd_get(prism_store *st, prism_object_id *id, int timeout)
{
    prism_store_buffer b;
    prism_store_status s = prism_store_get(st, id, timeout, &b);
    if (s != PRISM_STORE_OK)
        return err(st, s);
    char h[65];
    sha(b.data, b.size, h);
    printf("OK size=%llu sha256=%s metadata=%.*s\n", (unsigned long long)b.size, h,
           (int)b.metadata_size, (const char *)b.metadata);
    return prism_store_release(st, id) == PRISM_STORE_OK ? 0 : err(st, PRISM_STORE_ERROR);
}

static int cmd_fill(prism_store *st, const char *prefix, uint32_t n, uint64_t size)
{
    prism_store_status s;
    for (uint32_t i = 0; i < n; i++) {
        prism_object_id id;
        uint8_t *p;
        indexed_id(prefix, i, &id);
        if ((s = prism_store_create(st, &id, NULL, size, NULL, 0, PRISM_STORE_PIN, &p)) !=
            PRISM_STORE_OK)
            return err(st, s);
        pattern(p, size, i);
        if ((s = prism_store_seal(st, &id)) != PRISM_STORE_OK)
            return err(st, s);
    }
    for (uint32_t i = 0; i < n; i++) {
        prism_object_id id;
        prism_store_buffer b;
        indexed_id(prefix, i, &id);
        if ((s = prism_store_get(st, &id, 0, &b)) != PRISM_STORE_OK)
            return err(st, s);
        if (b.size != size || check(b.data, b.size, i) != 0) {
            printf("ERR CORRUPT object %u does not match\n", i);
            return 1;
        }
        prism_store_release(st, &id);
    }
    printf("OK filled %u\n", n);
    return 0;
}

static int cmd_stress(prism_store *st, uint32_t n, uint64_t seed)
{
    uint8_t *buf = malloc(1 << 20);
    for (uint32_t i = 0; i < n; i++) {
        prism_object_id id;
        char hex[41];
        snprintf(hex, sizeof hex, "%016llx%016llx%08x", (unsigned long long)seed,
                 (unsigned long long)splitmix(seed), i);
        prism_object_id_from_hex(&id, hex);
        uint64_t size = splitmix(seed + i) % (1 << 20);
        pattern(buf, size, seed + i);
        prism_store_status s = prism_store_put(st, &id, NULL, buf, size, NULL, 0, 0);
        prism_store_buffer b;
        if (s == PRISM_STORE_OK)
            s = prism_store_get(st, &id, 1000, &b);
        if (s == PRISM_STORE_NOT_FOUND)
            continue; /* evicted by another client's put: allowed */
        if (s != PRISM_STORE_OK) {
            free(buf);
            return err(st, s);
        }
        if (b.size != size || check(b.data, size, seed + i) != 0) {
            printf("ERR CORRUPT round %u\n", i);
            free(buf);
            return 1;
        }
        prism_store_release(st, &id);
        prism_store_delete(st, &id);
    }
    free(buf);
    printf("OK stress %u\n", n);
    return 0;
}

static const char *const presence[] = {"absent", "unsealed", "memory", "spilled"};

/* Objects got by "keep" and not released yet (a held pointer across commands). */
static struct {
    prism_object_id id;
    prism_store_buffer b;
    char sha[65];
} kept[8];
static int nkept;

/* Runs one command (argv[0] is its name); returns 0, 1 on failure, 2 on usage. */
static int run(prism_store *st, int argc, char **argv)
{
    const char *c = argv[0];
    prism_object_id id;
    prism_store_status s;
    if (!strcmp(c, "sleep") && argc == 2) {
        usleep((useconds_t)atoi(argv[1]) * 1000);
        printf("OK\n");
        return 0;
    }
    if (!strcmp(c, "rss")) { /* the Rss of the store's memfd mapping */
        FILE *f = fopen("/proc/self/smaps", "r");
        char line[512];
        bool arena = false;
        long kib = -1;
        while (f && fgets(line, sizeof line, f)) {
            unsigned long from, to;
            if (sscanf(line, "%lx-%lx ", &from, &to) == 2) /* a mapping's first line */
                arena = strstr(line, "memfd:prism-objectstore") != NULL;
            long v;
            if (arena && sscanf(line, "Rss: %ld kB", &v) == 1)
                kib = v;
        }
        if (f)
            fclose(f);
        if (kib < 0) {
            printf("ERR 1 no arena mapping in /proc/self/smaps\n");
            return 1;
        }
        printf("OK rss=%ld\n", kib);
        return 0;
    }
    if (!strcmp(c, "stats")) {
        prism_store_stats x;
        if ((s = prism_store_stats_get(st, &x)) != PRISM_STORE_OK)
            return err(st, s);
        printf("OK capacity=%llu used=%llu objects=%llu spilled_objects=%llu spill_files=%llu "
               "evictions=%llu spills=%llu restores=%llu clients=%llu\n",
               (unsigned long long)x.capacity_bytes, (unsigned long long)x.used_bytes,
               (unsigned long long)x.objects, (unsigned long long)x.spilled_objects,
               (unsigned long long)x.spill_files, (unsigned long long)x.evictions_total,
               (unsigned long long)x.spills_total, (unsigned long long)x.restores_total,
               (unsigned long long)x.clients);
        return 0;
    }
    if (!strcmp(c, "line")) { /* waits for a line on stdin: the test acts meanwhile */
        char line[64];
        printf("OK waiting\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
        return 0;
    }
    if (!strcmp(c, "fill") && argc == 4)
        return cmd_fill(st, argv[1], (uint32_t)atoi(argv[2]), strtoull(argv[3], NULL, 0));
    if (!strcmp(c, "stress") && argc == 3)
        return cmd_stress(st, (uint32_t)atoi(argv[1]), strtoull(argv[2], NULL, 0));
    if (argc < 2 || parse_id(argv[1], &id) != 0)
        return 2;
    if (!strcmp(c, "put") && argc >= 4) { /* put ID SIZE SEED [pin] [owner=HEX] */
        bool pin = false, owned = false;
        prism_id owner;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "pin"))
                pin = true;
            else if (!strncmp(argv[i], "owner=", 6) && prism_id_from_hex(&owner, argv[i] + 6) == 0)
                owned = true;
            else
                return 2;
        }
        return cmd_put(st, &id, strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0), pin,
                       owned ? &owner : NULL);
    }
    if (!strcmp(c, "putsmall") && argc == 4) /* putsmall ID SIZE SEED */
        return cmd_put_small(st, &id, strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
    if (!strcmp(c, "get"))
        return cmd_get(st, &id, argc > 2 ? atoi(argv[2]) : 0);
    if (!strcmp(c, "keep") && nkept < 8) { /* get without release */
        if ((s = prism_store_get(st, &id, 0, &kept[nkept].b)) != PRISM_STORE_OK)
            return err(st, s);
        kept[nkept].id = id;
        sha(kept[nkept].b.data, kept[nkept].b.size, kept[nkept].sha);
        printf("OK kept sha256=%s\n", kept[nkept++].sha);
        return 0;
    }
    if (!strcmp(c, "unkeep")) { /* the kept bytes are unchanged; then released */
        for (int i = 0; i < nkept; i++) {
            if (memcmp(kept[i].id.b, id.b, sizeof id.b) != 0)
                continue;
            char h[65];
            sha(kept[i].b.data, kept[i].b.size, h);
            s = prism_store_release(st, &id);
            kept[i] = kept[--nkept];
            printf("%s sha256=%s\n", s == PRISM_STORE_OK ? "OK" : "ERR", h);
            return s != PRISM_STORE_OK;
        }
        return 2;
    }
    if (!strcmp(c, "wait") && argc == 3) {
        prism_store_buffer b;
        s = prism_store_get(st, &id, atoi(argv[2]), &b);
        printf("%s %d %s\n", s == PRISM_STORE_OK ? "OK" : "ERR", (int)s,
               prism_store_status_text(s));
        return s != PRISM_STORE_OK;
    }
    if (!strcmp(c, "create-hang") && argc == 3) {
        uint8_t *p;
        uint64_t size = strtoull(argv[2], NULL, 0);
        if ((s = prism_store_create(st, &id, NULL, size, NULL, 0, 0, &p)) != PRISM_STORE_OK)
            return err(st, s);
        memset(p, 0x77, size / 2);
        printf("OK created\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (!strcmp(c, "hold")) {
        prism_store_buffer b;
        if ((s = prism_store_get(st, &id, 0, &b)) != PRISM_STORE_OK)
            return err(st, s);
        printf("OK held\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (!strcmp(c, "contains")) {
        prism_store_presence p;
        if ((s = prism_store_contains(st, &id, &p)) != PRISM_STORE_OK)
            return err(st, s);
        printf("OK %s\n", presence[p]);
        return 0;
    }
    static const struct {
        const char *name;
        prism_store_status (*fn)(prism_store *, const prism_object_id *);
    } simple[] = {{"delete", prism_store_delete},
                  {"pin", prism_store_pin},
                  {"unpin", prism_store_unpin},
                  {"abort", prism_store_abort},
                  {"seal", prism_store_seal}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(c, simple[i].name)) {
            if ((s = simple[i].fn(st, &id)) != PRISM_STORE_OK)
                return err(st, s);
            printf("OK\n");
            return 0;
        }
    return 2;
}

int main(int argc, char **argv)
{
    bool lazy = argc > 1 && !strcmp(argv[1], "--lazy");
    argc -= lazy;
    argv += lazy;
    if (argc < 3) {
        fprintf(stderr, "usage: %s [--lazy] SOCKET CMD [ARGS] [-- CMD [ARGS]]...\n", argv[0]);
        return 2;
    }
    prism_store *st;
    char e[256];
    prism_store_status s = prism_store_connect_lazy(&st, argv[1], lazy, e, sizeof e);
    if (s != PRISM_STORE_OK) {
        printf("ERR %d %s\n", (int)s, e);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc && rc != 2;) {
        int j = i;
        while (j < argc && strcmp(argv[j], "--") != 0)
            j++;
        int r = run(st, j - i, argv + i);
        fflush(stdout);
        if (r == 2)
            fprintf(stderr, "bad command: %s\n", argv[i]);
        rc = r > rc ? r : rc;
        i = j + 1;
    }
    prism_store_destroy(st);
    return rc;
}
