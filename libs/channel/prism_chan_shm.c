/* The shared-memory ring: segment, writer and readers.
 *
 * Memory ordering (docs/dags.md#channels has the whole argument):
 *   - publish: the writer fills a slot's data and len with plain stores, then
 *     stores seq = k (release); a reader that loads seq == k (acquire) sees
 *     the whole value.
 *   - reuse: a reader stores its `released` count (release) after its last
 *     read of the slot; the writer loads every reader's count (acquire)
 *     before writing the slot again, so no read can see the next value.
 *   - sleeping: a sleeper flags itself (readers_waiting, writer_waiting),
 *     then checks its condition; the other side stores its progress, then
 *     checks the flag. Both pairs are seq_cst (a store followed by a load of
 *     another location needs it), so at least one side sees the other: the
 *     sleeper its condition met, or the waker the flag. The futex word is
 *     read before the flag is set, and the waker bumps it before FUTEX_WAKE,
 *     so a wake that comes before the sleeper reaches FUTEX_WAIT makes that
 *     wait return at once (the word no longer matches). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan_internal.h"

#define PAGE 4096u

static uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

static prism_chan_status fail(char *err, size_t errlen, prism_chan_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static prism_chan_status fail(char *err, size_t errlen, prism_chan_status s, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* The layout every segment of this geometry has; the creator writes it and
 * an opener recomputes it to check what it maps. */
static void geometry(uint32_t nslots, uint32_t nreaders, uint64_t slot_size, uint64_t *readers_off,
                     uint64_t *slots_off, uint64_t *stride, uint64_t *total)
{
    *readers_off = sizeof(chan_hdr);
    *slots_off = round_up(*readers_off + (uint64_t)nreaders * sizeof(chan_reader_line), PAGE);
    *stride = round_up(sizeof(chan_slot) + slot_size, CHAN_LINE);
    *total = round_up(*slots_off + (uint64_t)nslots * *stride, PAGE);
}

static void take_geometry(prism_chan *ch)
{
    const chan_hdr *h = ch->hdr;
    ch->nslots = h->nslots;
    ch->nreaders = h->nreaders;
    ch->slot_size = h->slot_size;
    ch->slot_stride = h->slot_stride;
    ch->readers_off = h->readers_off;
    ch->slots_off = h->slots_off;
}

static prism_chan_status map_segment(prism_chan *ch, int fd, size_t size, char *err, size_t errlen)
{
    /* MAP_POPULATE: page tables are filled now, not by faults on the hot path. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return fail(err, errlen, PRISM_CHAN_ERROR, "mmap of %zu bytes: %s", size, strerror(errno));
    ch->fd = fd;
    ch->base = p;
    ch->size = size;
    ch->hdr = p;
    return PRISM_CHAN_OK;
}

prism_chan_status prism_chan_create(prism_chan **out, const prism_chan_options *o, char *err,
                                    size_t errlen)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    if (!o)
        return fail(err, errlen, PRISM_CHAN_INVALID, "no options");
    uint32_t nslots = o->nslots ? o->nslots : PRISM_CHAN_DEFAULT_SLOTS;
    if (nslots > PRISM_CHAN_MAX_SLOTS || o->nreaders < 1 || o->nreaders > PRISM_CHAN_MAX_READERS ||
        o->max_buf_size < 1 || o->max_buf_size > PRISM_CHAN_MAX_BUF_SIZE)
        return fail(err, errlen, PRISM_CHAN_INVALID,
                    "nslots %u (1..%u), nreaders %u (1..%u), max_buf_size %llu (1..%llu)", nslots,
                    PRISM_CHAN_MAX_SLOTS, o->nreaders, PRISM_CHAN_MAX_READERS,
                    (unsigned long long)o->max_buf_size,
                    (unsigned long long)PRISM_CHAN_MAX_BUF_SIZE);
    uint64_t readers_off, slots_off, stride, total;
    geometry(nslots, o->nreaders, o->max_buf_size, &readers_off, &slots_off, &stride, &total);
    if (total > (uint64_t)SIZE_MAX / 2 || total > (uint64_t)INT64_MAX)
        return fail(err, errlen, PRISM_CHAN_INVALID, "segment of %llu bytes is too large",
                    (unsigned long long)total);

    prism_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return fail(err, errlen, PRISM_CHAN_ERROR, "out of memory");
    int fd = memfd_create("prism-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        free(ch);
        return fail(err, errlen, PRISM_CHAN_ERROR, "memfd_create: %s", strerror(errno));
    }
    /* fallocate, not just ftruncate: memory that is not there fails now, with
     * an error, instead of as SIGBUS on some later write. The seals stop any
     * process holding the fd from shrinking the segment under the others. */
    const char *what = NULL;
    if (ftruncate(fd, (off_t)total) != 0)
        what = "ftruncate";
    else if (fallocate(fd, 0, 0, (off_t)total) != 0)
        what = "fallocate";
    else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        what = "sealing";
    if (what) {
        int e = errno;
        close(fd);
        free(ch);
        return fail(err, errlen, PRISM_CHAN_ERROR, "%s of %llu bytes: %s", what,
                    (unsigned long long)total, strerror(e));
    }
    prism_chan_status s = map_segment(ch, fd, (size_t)total, err, errlen);
    if (s != PRISM_CHAN_OK) {
        close(fd);
        free(ch);
        return s;
    }
    /* The memfd starts zeroed: every atomic is 0 (free, nothing published).
     * Nobody else can see the segment before this function returns. */
    chan_hdr *h = ch->hdr;
    h->version = CHAN_VERSION;
    h->nslots = nslots;
    h->nreaders = o->nreaders;
    h->slot_size = o->max_buf_size;
    h->slot_stride = stride;
    h->readers_off = readers_off;
    h->slots_off = slots_off;
    h->total_size = total;
    h->magic = CHAN_MAGIC;
    take_geometry(ch);
    *out = ch;
    return PRISM_CHAN_OK;
}

prism_chan_status prism_chan_open_fd(prism_chan **out, int fd, char *err, size_t errlen)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail(err, errlen, PRISM_CHAN_ERROR, "fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(chan_hdr))
        return fail(err, errlen, PRISM_CHAN_PROTOCOL, "not a channel segment (%lld bytes)",
                    (long long)st.st_size);
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return fail(err, errlen, PRISM_CHAN_PROTOCOL, "segment is not sealed against shrinking");
    prism_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return fail(err, errlen, PRISM_CHAN_ERROR, "out of memory");
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) {
        free(ch);
        return fail(err, errlen, PRISM_CHAN_ERROR, "dup: %s", strerror(errno));
    }
    prism_chan_status s = map_segment(ch, own, (size_t)st.st_size, err, errlen);
    if (s != PRISM_CHAN_OK) {
        close(own);
        free(ch);
        return s;
    }
    /* Copied first, then checked: what is used is what was checked, even if
     * a peer writes the header meanwhile. */
    const chan_hdr *h = ch->hdr;
    uint64_t magic = h->magic, size_in_hdr = h->total_size;
    uint32_t version = h->version;
    take_geometry(ch);
    uint64_t readers_off, slots_off, stride, total;
    bool ok = magic == CHAN_MAGIC && version == CHAN_VERSION && ch->nslots >= 1 &&
              ch->nslots <= PRISM_CHAN_MAX_SLOTS && ch->nreaders >= 1 &&
              ch->nreaders <= PRISM_CHAN_MAX_READERS && ch->slot_size >= 1 &&
              ch->slot_size <= PRISM_CHAN_MAX_BUF_SIZE;
    if (ok) {
        geometry(ch->nslots, ch->nreaders, ch->slot_size, &readers_off, &slots_off, &stride,
                 &total);
        ok = readers_off == ch->readers_off && slots_off == ch->slots_off &&
             stride == ch->slot_stride && total == size_in_hdr && total <= (uint64_t)st.st_size;
    }
    if (!ok) {
        prism_chan_destroy(ch);
        return fail(err, errlen, PRISM_CHAN_PROTOCOL,
                    "not a channel segment of this version (bad magic or geometry)");
    }
    *out = ch;
    return PRISM_CHAN_OK;
}

int prism_chan_fd(const prism_chan *ch) { return ch ? ch->fd : -1; }

void prism_chan_get_options(const prism_chan *ch, prism_chan_options *o)
{
    o->nslots = ch->nslots;
    o->nreaders = ch->nreaders;
    o->max_buf_size = ch->slot_size;
}

void prism_chan_destroy(prism_chan *ch)
{
    if (!ch)
        return;
    munmap(ch->base, ch->size);
    close(ch->fd);
    free(ch);
}

/* ---------- writer ---------- */

prism_chan_status prism_chan_writer_open_shm(prism_chan_writer **out, prism_chan *ch,
                                             const prism_chan_wait *wait)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    if (!ch)
        return PRISM_CHAN_INVALID;
    prism_chan_writer *w = calloc(1, sizeof *w);
    if (!w)
        return PRISM_CHAN_ERROR;
    chan_hdr *h = ch->hdr;
    uint32_t expect = CHAN_FREE;
    if (!atomic_compare_exchange_strong(&h->writer_state, &expect, CHAN_ATTACHED)) {
        free(w);
        return PRISM_CHAN_IN_USE;
    }
    /* Readers check these only once they see the writer attached and time
     * passes without a value; a pid not there yet reads as 0, "unknown". */
    atomic_store(&h->writer_start, chan_self_start());
    atomic_store(&h->writer_pid, (int32_t)getpid());
    w->kind = CHAN_KIND_SHM;
    chan_wait_defaults(&w->wait, wait);
    w->u.shm.ch = ch;
    w->u.shm.next = 1;
    w->u.shm.slot = 0;
    w->u.shm.floor = 0;
    *out = w;
    return PRISM_CHAN_OK;
}

/* The slowest present reader's `released` in *floor; returns how many readers
 * are present (attached, or not yet attached: their place is kept). */
static uint32_t scan_readers(prism_chan *ch, uint64_t *floor)
{
    uint32_t present = 0;
    uint64_t min = UINT64_MAX;
    for (uint32_t i = 0; i < ch->nreaders; i++) {
        chan_reader_line *l = chan_reader_at(ch, i);
        if (atomic_load(&l->state) == CHAN_LEFT)
            continue;
        present++;
        uint64_t c = atomic_load(&l->released); /* seq_cst: see the module comment */
        if (c < min)
            min = c;
    }
    *floor = min;
    return present;
}

/* OK when every present reader released `need` values; CLOSED when none is
 * left; TIMEOUT (meaning "not yet") otherwise. */
static prism_chan_status slot_free(prism_chan_writer *w, uint64_t need)
{
    uint64_t floor;
    if (scan_readers(w->u.shm.ch, &floor) == 0)
        return PRISM_CHAN_CLOSED;
    if (floor < need)
        return PRISM_CHAN_TIMEOUT;
    w->u.shm.floor = floor;
    return PRISM_CHAN_OK;
}

/* Whether a reader the writer waits for has died. Readers not attached yet
 * cannot be checked (no pid): the writer waits for them until its timeout. */
static bool blocker_dead(prism_chan *ch, uint64_t need)
{
    for (uint32_t i = 0; i < ch->nreaders; i++) {
        chan_reader_line *l = chan_reader_at(ch, i);
        if (atomic_load(&l->state) != CHAN_ATTACHED || atomic_load(&l->released) >= need)
            continue;
        if (!chan_process_alive(atomic_load(&l->pid), atomic_load(&l->start)))
            return true;
    }
    return false;
}

static prism_chan_status writer_wait(prism_chan_writer *w, uint64_t need, int timeout_ms)
{
    prism_chan *ch = w->u.shm.ch;
    chan_hdr *h = ch->hdr;
    prism_chan_status s = slot_free(w, need);
    if (s != PRISM_CHAN_TIMEOUT)
        return s;
    int64_t now = chan_now_ns(); /* one clock read for both */
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now + (int64_t)timeout_ms * 1000000;
    int64_t spin_end = now + (int64_t)w->wait.spin_us * 1000;
    if (spin_end > deadline)
        spin_end = deadline;
    int64_t spin_began = now;
    for (unsigned i = 1; now < spin_end; i++) {
        chan_cpu_relax();
        if ((s = slot_free(w, need)) != PRISM_CHAN_TIMEOUT)
            return s;
        if (w->cpu_shared || i % 32 == 0)
            chan_spin_yield(&w->cpu_shared, spin_began, now = chan_now_ns());
    }
    int64_t live_every = (int64_t)w->wait.liveness_ms * 1000000;
    int64_t next_check = chan_now_ns() + live_every;
    for (;;) {
        uint32_t v = atomic_load_explicit(&h->rel_word, memory_order_acquire);
        atomic_store(&h->writer_waiting, 1);
        s = slot_free(w, need);
        if (s == PRISM_CHAN_TIMEOUT) {
            now = chan_now_ns();
            int64_t until = deadline < next_check ? deadline : next_check;
            if (now < until)
                chan_futex_wait(&h->rel_word, v, until - now);
            s = slot_free(w, need);
        }
        atomic_store_explicit(&h->writer_waiting, 0, memory_order_relaxed);
        if (s != PRISM_CHAN_TIMEOUT)
            return s;
        now = chan_now_ns();
        /* Every liveness_ms while blocked, and when the time is up (unless
         * looked at lately). */
        if (now >= next_check || (now >= deadline && now >= w->u.shm.live_next)) {
            w->u.shm.live_next = next_check = now + live_every;
            if (blocker_dead(ch, need)) {
                w->u.shm.dead = true;
                return PRISM_CHAN_PEER_DEAD;
            }
        }
        if (now >= deadline)
            return PRISM_CHAN_TIMEOUT;
    }
}

prism_chan_status chan_shm_begin_write(prism_chan_writer *w, void **buf, int timeout_ms)
{
    prism_chan *ch = w->u.shm.ch;
    uint64_t k = w->u.shm.next, n = ch->nslots;
    if (w->u.shm.dead)
        return PRISM_CHAN_PEER_DEAD;
    /* Value k goes where value k - n was: every reader must have released it.
     * The cached floor saves looking at the readers' lines until it is hit. */
    if (k > n && w->u.shm.floor < k - n) {
        prism_chan_status s = writer_wait(w, k - n, timeout_ms);
        if (s != PRISM_CHAN_OK)
            return s;
    }
    *buf = chan_slot_data(chan_slot_at(ch, w->u.shm.slot));
    return PRISM_CHAN_OK;
}

prism_chan_status chan_shm_end_write(prism_chan_writer *w, size_t len)
{
    prism_chan *ch = w->u.shm.ch;
    chan_hdr *h = ch->hdr;
    chan_slot *slot = chan_slot_at(ch, w->u.shm.slot);
    slot->len = len;
    if (PRISM_CHAN_HIST_SAMPLED(w->u.shm.next))
        slot->stamp = chan_now_ns();
    atomic_store(&slot->seq, w->u.shm.next); /* release, and ordered before the load below */
    w->u.shm.next++;
    if (++w->u.shm.slot == ch->nslots)
        w->u.shm.slot = 0;
    if (atomic_load(&h->readers_waiting) > 0) {
        atomic_fetch_add(&h->pub_word, 1);
        chan_futex_wake(&h->pub_word, INT_MAX);
    }
    return PRISM_CHAN_OK;
}

void chan_shm_writer_close(prism_chan_writer *w)
{
    if (w->closed)
        return;
    w->closed = true;
    chan_hdr *h = w->u.shm.ch->hdr;
    /* After every publish in program order: a reader that sees closed and
     * then finds no value knows none is coming. Closing is rare: wake
     * everyone without looking at the flag. */
    atomic_store(&h->closed, 1);
    atomic_fetch_add(&h->pub_word, 1);
    chan_futex_wake(&h->pub_word, INT_MAX);
}

void chan_shm_writer_free(prism_chan_writer *w)
{
    chan_shm_writer_close(w);
    atomic_store(&w->u.shm.ch->hdr->writer_state, CHAN_LEFT);
    free(w);
}

/* ---------- readers ---------- */

prism_chan_status prism_chan_reader_open_shm(prism_chan_reader **out, prism_chan *ch,
                                             uint32_t index, const prism_chan_wait *wait)
{
    if (!out)
        return PRISM_CHAN_INVALID;
    *out = NULL;
    if (!ch || index >= ch->nreaders)
        return PRISM_CHAN_INVALID;
    prism_chan_reader *r = calloc(1, sizeof *r);
    if (!r)
        return PRISM_CHAN_ERROR;
    chan_reader_line *l = chan_reader_at(ch, index);
    uint32_t expect = CHAN_FREE;
    if (!atomic_compare_exchange_strong(&l->state, &expect, CHAN_ATTACHED)) {
        free(r);
        return PRISM_CHAN_IN_USE;
    }
    atomic_store(&l->start, chan_self_start());
    atomic_store(&l->pid, (int32_t)getpid());
    r->kind = CHAN_KIND_SHM;
    chan_wait_defaults(&r->wait, wait);
    r->u.shm.ch = ch;
    r->u.shm.index = index;
    /* A place is taken once: its count starts where the writer expects it (0). */
    r->u.shm.next = atomic_load(&l->released) + 1;
    r->u.shm.slot = (uint32_t)((r->u.shm.next - 1) % ch->nslots);
    *out = r;
    return PRISM_CHAN_OK;
}

/* OK when value `k` is in `slot`; CLOSED when the writer closed and it will
 * never come; TIMEOUT (not yet) otherwise. */
static prism_chan_status value_ready(chan_hdr *h, chan_slot *slot, uint64_t k)
{
    if (atomic_load(&slot->seq) == k) /* acquire: the value's bytes are visible */
        return PRISM_CHAN_OK;
    if (!atomic_load(&h->closed))
        return PRISM_CHAN_TIMEOUT;
    /* Closed after its last publish: look once more, then it is the end. */
    return atomic_load(&slot->seq) == k ? PRISM_CHAN_OK : PRISM_CHAN_CLOSED;
}

static bool writer_dead(chan_hdr *h)
{
    return atomic_load(&h->writer_state) == CHAN_ATTACHED &&
           !chan_process_alive(atomic_load(&h->writer_pid), atomic_load(&h->writer_start));
}

static prism_chan_status reader_wait(prism_chan_reader *r, chan_slot *slot, uint64_t k,
                                     int timeout_ms)
{
    chan_hdr *h = r->u.shm.ch->hdr;
    int64_t now = chan_now_ns(); /* one clock read for both */
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now + (int64_t)timeout_ms * 1000000;
    int64_t spin_end = now + (int64_t)r->wait.spin_us * 1000;
    if (spin_end > deadline)
        spin_end = deadline;
    prism_chan_status s;
    int64_t spin_began = now;
    for (unsigned i = 1; now < spin_end; i++) {
        chan_cpu_relax();
        if ((s = value_ready(h, slot, k)) != PRISM_CHAN_TIMEOUT)
            return s;
        if (r->cpu_shared || i % 32 == 0)
            chan_spin_yield(&r->cpu_shared, spin_began, now = chan_now_ns());
    }
    int64_t live_every = (int64_t)r->wait.liveness_ms * 1000000;
    int64_t next_check = chan_now_ns() + live_every;
    for (;;) {
        uint32_t v = atomic_load_explicit(&h->pub_word, memory_order_acquire);
        atomic_fetch_add(&h->readers_waiting, 1);
        s = value_ready(h, slot, k);
        if (s == PRISM_CHAN_TIMEOUT) {
            now = chan_now_ns();
            int64_t until = deadline < next_check ? deadline : next_check;
            if (now < until)
                chan_futex_wait(&h->pub_word, v, until - now);
            s = value_ready(h, slot, k);
        }
        atomic_fetch_sub(&h->readers_waiting, 1);
        if (s != PRISM_CHAN_TIMEOUT)
            return s;
        now = chan_now_ns();
        /* Values a dead writer published were returned above; only then is
         * its death the answer. */
        if (now >= next_check || (now >= deadline && now >= r->u.shm.live_next)) {
            r->u.shm.live_next = next_check = now + live_every;
            if (writer_dead(h)) {
                r->u.shm.dead = true;
                return PRISM_CHAN_PEER_DEAD;
            }
        }
        if (now >= deadline)
            return PRISM_CHAN_TIMEOUT;
    }
}

void prism_chan_reader_hist(const prism_chan *ch, uint32_t reader, prism_chan_hist *out)
{
    memset(out, 0, sizeof *out);
    if (!ch || reader >= ch->nreaders)
        return;
    chan_reader_line *l = chan_reader_at(ch, reader);
    for (int i = 0; i < PRISM_CHAN_HIST_BUCKETS; i++)
        out->count[i] = atomic_load_explicit(&l->hist[i], memory_order_relaxed);
    out->sum_ns = atomic_load_explicit(&l->hist_sum_ns, memory_order_relaxed);
}

prism_chan_status chan_shm_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                      int timeout_ms)
{
    prism_chan *ch = r->u.shm.ch;
    chan_slot *slot = chan_slot_at(ch, r->u.shm.slot);
    uint64_t k = r->u.shm.next;
    if (r->u.shm.dead)
        return PRISM_CHAN_PEER_DEAD;
    if (atomic_load_explicit(&slot->seq, memory_order_acquire) != k) {
        prism_chan_status s = reader_wait(r, slot, k, timeout_ms);
        if (s != PRISM_CHAN_OK)
            return s;
    }
    uint64_t n = slot->len;
    if (n > ch->slot_size) /* a writer that broke the segment; never read past the slot */
        return PRISM_CHAN_PROTOCOL;
    if (PRISM_CHAN_HIST_SAMPLED(k)) {
        chan_reader_line *l = chan_reader_at(ch, r->u.shm.index);
        chan_count_latency(l->hist, &l->hist_sum_ns, chan_now_ns() - slot->stamp);
    }
    *buf = chan_slot_data(slot);
    *len = (size_t)n;
    return PRISM_CHAN_OK;
}

void chan_shm_end_read(prism_chan_reader *r)
{
    prism_chan *ch = r->u.shm.ch;
    chan_hdr *h = ch->hdr;
    chan_reader_line *l = chan_reader_at(ch, r->u.shm.index);
    uint64_t done = r->u.shm.next++;
    if (++r->u.shm.slot == ch->nslots)
        r->u.shm.slot = 0;
    atomic_store(&l->released, done); /* release, and ordered before the load below */
    if (atomic_load(&h->writer_waiting)) {
        atomic_fetch_add(&h->rel_word, 1);
        chan_futex_wake(&h->rel_word, 1);
    }
}

void chan_shm_reader_free(prism_chan_reader *r)
{
    chan_hdr *h = r->u.shm.ch->hdr;
    chan_reader_line *l = chan_reader_at(r->u.shm.ch, r->u.shm.index);
    /* Leaving for good: the writer stops counting this reader. Wake it in
     * case this reader was the one it waited for. */
    atomic_store(&l->state, CHAN_LEFT);
    atomic_fetch_add(&h->rel_word, 1);
    chan_futex_wake(&h->rel_word, 1);
    free(r);
}
