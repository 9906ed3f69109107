/* Client of prism-objectstore: see prism_store.h; wire format in prism_store_proto.h. */
#include "prism_store.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "prism_store_proto.h"

/* A reply never exceeds this; anything longer is a protocol error. */
#define REPLY_MAX 256
/* Creates and gets at least this large map the arena's pages they touch at
 * once, in whole chunks of CHUNK bytes that stay mapped (see map_span). */
#define POPULATE_MIN (64u << 10)
#define CHUNK_SHIFT 21           /* 2 MiB */
#define MAP_ALL_MAX (1ull << 30) /* arenas up to this size are mapped whole at connect */
/* Extra time a waiting get gives the store to answer before declaring it hung. */
#define REPLY_GRACE_MS 10000

/* The objects this handle has pointers into: gets not released yet and
 * creates not sealed or aborted yet (ID -> count; a create counts once). */
typedef struct held_slot {
    prism_object_id id;
    uint32_t count; /* 0: empty slot */
} held_slot;

typedef struct held_table {
    held_slot *slots;
    size_t cap, n; /* cap is 0 or a power of two */
} held_table;

typedef struct old_arena {
    uint8_t *base;
    uint64_t size;
} old_arena;

struct prism_store {
    pthread_mutex_t mu;
    int fd;
    uint8_t *arena;
    uint64_t arena_size;
    bool lazy;             /* never map the whole arena at connect */
    uint64_t *mapped;      /* a bit per chunk of the arena: its pages are mapped here;
                            * NULL: all are, or mapping them ahead is not cheap */
    char url[PSP_URL_MAX]; /* the store's HTTP URL from HELLO */
    bool broken;
    int rcv_timeout_ms; /* SO_RCVTIMEO now set; -1: none */
    char *path;         /* to connect again after the store restarted */
    held_table held;    /* pointers into the current arena */
    held_table stale;   /* pointers into arenas of stores that went away */
    old_arena *old;     /* those arenas: mapped while `stale` is not empty */
    size_t nold;
    bool keep_old; /* an ID was held in both: which pointer a release ends is unknown */
    /* The last small object this handle put, with the reference its put took
     * (PSP_FLAG_HOLD): a get of it is answered here, without a round trip.
     * That reference goes with the handle's next request (a RELEASE frame in
     * the same send) once every get answered here is released. Its count in
     * `held` is one for the put plus `users`. */
    struct {
        bool valid;
        bool gettable;  /* false once this handle deleted it */
        uint32_t users; /* gets answered here, not released yet */
        prism_object_id id;
        prism_store_buffer buf;
    } kept;
    char err[256];
};

static const char *const status_texts[] = {
    [PRISM_STORE_OK] = "ok",
    [PRISM_STORE_ERROR] = "object store error",
    [PRISM_STORE_NOT_FOUND] = "object not found",
    [PRISM_STORE_EXISTS] = "object already exists",
    [PRISM_STORE_TIMEOUT] = "timed out waiting for the object",
    [PRISM_STORE_OUT_OF_MEMORY] = "object store is out of memory",
    [PRISM_STORE_TOO_LARGE] = "object is larger than the object store's arena",
    [PRISM_STORE_NOT_SEALED] = "object is not sealed",
    [PRISM_STORE_SEALED] = "object is already sealed",
    [PRISM_STORE_NOT_OWNER] = "object was created by another client",
    [PRISM_STORE_NOT_HELD] = "no reference to release",
    [PRISM_STORE_INVALID] = "invalid argument",
    [PRISM_STORE_IO_ERROR] = "object store disk I/O failed",
    [PRISM_STORE_DISCONNECTED] = "disconnected from the object store",
    [PRISM_STORE_PROTOCOL] = "object store protocol error",
};

const char *prism_store_status_text(prism_store_status s)
{
    if ((unsigned)s >= sizeof status_texts / sizeof status_texts[0] || !status_texts[s])
        return "unknown object store status";
    return status_texts[s];
}

__attribute__((format(printf, 3, 4))) static prism_store_status fail(prism_store *st,
                                                                     prism_store_status s,
                                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    if (s == PRISM_STORE_DISCONNECTED || s == PRISM_STORE_PROTOCOL)
        st->broken = true;
    return s;
}

/* ---------- the objects this handle points into ---------- */

static size_t slot_of(const held_table *t, const prism_object_id *id)
{
    uint64_t h;
    memcpy(&h, id->b, sizeof h); /* IDs are random bytes: their head is a hash */
    h ^= h >> 29;
    return (size_t)(h * 0x9e3779b97f4a7c15ull) & (t->cap - 1);
}

static held_slot *held_find(held_table *t, const prism_object_id *id)
{
    if (!t->n)
        return NULL;
    for (size_t i = slot_of(t, id);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i].count)
            return NULL;
        if (!memcmp(t->slots[i].id.b, id->b, sizeof id->b))
            return &t->slots[i];
    }
}

/* Adds `count` to the ID's entry. Returns -1 when out of memory (the entry is
 * then missing: only a restart of the store would notice). */
static int held_add(held_table *t, const prism_object_id *id, uint32_t count)
{
    held_slot *e = held_find(t, id);
    if (e) {
        e->count += count;
        return 0;
    }
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        held_slot *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        held_table bigger = {slots, cap, 0};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].count)
                held_add(&bigger, &t->slots[i].id, t->slots[i].count);
        free(t->slots);
        *t = bigger;
    }
    size_t i = slot_of(t, id);
    while (t->slots[i].count)
        i = (i + 1) & (t->cap - 1);
    t->slots[i].id = *id;
    t->slots[i].count = count;
    t->n++;
    return 0;
}

/* Takes one off the entry (found in `t`), removing it at zero (backward shift). */
static void held_drop(held_table *t, held_slot *e)
{
    if (--e->count)
        return;
    size_t i = (size_t)(e - t->slots);
    for (size_t j = (i + 1) & (t->cap - 1); t->slots[j].count; j = (j + 1) & (t->cap - 1)) {
        size_t home = slot_of(t, &t->slots[j].id);
        /* the entry at j may move to the hole at i when its home is not in (i, j] */
        if (((j - home) & (t->cap - 1)) >= ((j - i) & (t->cap - 1))) {
            t->slots[i] = t->slots[j];
            t->slots[j].count = 0;
            i = j;
        }
    }
    t->slots[i].count = 0;
    t->n--;
}

static void unmap_old(prism_store *st)
{
    for (size_t i = 0; i < st->nold; i++)
        munmap(st->old[i].base, st->old[i].size);
    free(st->old);
    st->old = NULL;
    st->nold = 0;
}

/* An ID of the handle of a store that went away (a release, seal or abort of
 * something from before the reconnect): dropped here, never sent to the new
 * store, where the same ID may name a new object this handle also holds.
 * Returns true when it was such an ID. */
static bool stale_drop(prism_store *st, const prism_object_id *id)
{
    held_slot *e = held_find(&st->stale, id);
    if (!e)
        return false;
    held_drop(&st->stale, e);
    if (held_find(&st->held, id))
        st->keep_old = true;
    if (!st->stale.n && !st->keep_old)
        unmap_old(st); /* nothing points into the old arenas any more */
    return true;
}

static prism_store_status set_status(prism_store *st, prism_store_status s)
{
    if (s == PRISM_STORE_OK)
        st->err[0] = '\0';
    else
        snprintf(st->err, sizeof st->err, "%s", prism_store_status_text(s));
    return s;
}

#define SEND_IOV_MAX 6

static prism_store_status send_all(prism_store *st, const struct iovec *iov_in, int n)
{
    struct iovec iov[SEND_IOV_MAX];
    memcpy(iov, iov_in, (size_t)n * sizeof iov[0]);
    struct iovec *v = iov;
    while (n > 0) {
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(st->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return fail(st, PRISM_STORE_DISCONNECTED, "object store: send: %s", strerror(errno));
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return PRISM_STORE_OK;
}

/* Bounds every recv by `timeout_ms` (-1: none); the socket option is only
 * changed when the bound changes, so the common call costs no extra syscall. */
static void set_timeout(prism_store *st, int timeout_ms)
{
    if (timeout_ms == st->rcv_timeout_ms)
        return;
    struct timeval tv = {0};
    if (timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    if (setsockopt(st->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0)
        st->rcv_timeout_ms = timeout_ms;
}

/* Reads exactly `len` bytes, each recv waiting at most `timeout_ms` (-1: forever). */
static prism_store_status recv_all(prism_store *st, void *buf, size_t len, int timeout_ms)
{
    set_timeout(st, timeout_ms);
    size_t got = 0;
    /* Most answers come within microseconds: polling for them briefly saves
     * this thread a sleep and a wake-up (and, across CPUs, most of the wait). */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ssize_t n = recv(st->fd, buf, len, MSG_DONTWAIT);
        if (n > 0) {
            got = (size_t)n;
            break;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break; /* the blocking loop below reports it */
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) > 50000)
            break;
    }
    while (got < len) {
        ssize_t n = recv(st->fd, (char *)buf + got, len - got, 0);
        if (n == 0)
            return fail(st, PRISM_STORE_DISCONNECTED, "object store closed the connection");
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fail(st, PRISM_STORE_DISCONNECTED, "object store did not answer in time");
        if (n < 0)
            return fail(st, PRISM_STORE_DISCONNECTED, "object store: recv: %s", strerror(errno));
        got += (size_t)n;
    }
    return PRISM_STORE_OK;
}

static prism_store_status open_store(prism_store *st);

static bool is_kept(const prism_store *st, const prism_object_id *id)
{
    return st->kept.valid && !memcmp(st->kept.id.b, id->b, sizeof id->b);
}

/* Lets the kept object go when nothing of this handle reads it through the
 * kept reference any more: fills in the RELEASE frame to send before the
 * next request and returns true. */
static bool kept_drop(prism_store *st, psp_hdr *h, psp_id_req *req)
{
    if (!st->kept.valid || st->kept.users)
        return false;
    st->kept.valid = false;
    held_slot *e = held_find(&st->held, &st->kept.id);
    if (e)
        held_drop(&st->held, e);
    *h = (psp_hdr){.len = sizeof *req, .type = PSP_RELEASE, .flags = PSP_FLAG_NOREPLY};
    memcpy(req->id, st->kept.id.b, sizeof req->id);
    return true;
}

/* A store that went away and came back (a supervisor restarted it on the
 * same socket): a new connection and arena. The old arena stays mapped while
 * this handle still has pointers into it (gets not released, creates not
 * sealed); their IDs are never sent to the new store. */
static prism_store_status reconnect(prism_store *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    st->rcv_timeout_ms = -1;
    /* the old store dropped the put's reference with the connection; gets
     * answered from it are released as the old store's (stale) ones */
    if (st->kept.valid) {
        held_slot *e = held_find(&st->held, &st->kept.id);
        if (e)
            held_drop(&st->held, e);
        st->kept.valid = false;
        st->kept.users = 0;
    }
    for (size_t i = 0; i < st->held.cap; i++)
        if (st->held.slots[i].count &&
            held_add(&st->stale, &st->held.slots[i].id, st->held.slots[i].count) != 0)
            return fail(st, PRISM_STORE_ERROR, "out of memory");
    free(st->held.slots);
    st->held = (held_table){0};
    if (st->arena) {
        if (st->stale.n) {
            old_arena *more = realloc(st->old, (st->nold + 1) * sizeof *more);
            if (!more)
                return fail(st, PRISM_STORE_ERROR, "out of memory");
            st->old = more;
            st->old[st->nold++] = (old_arena){st->arena, st->arena_size};
        } else {
            munmap(st->arena, st->arena_size);
        }
        st->arena = NULL;
        st->arena_size = 0;
    }
    free(st->mapped);
    st->mapped = NULL;
    prism_store_status s = open_store(st);
    if (s != PRISM_STORE_OK)
        return fail(st, PRISM_STORE_DISCONNECTED, "object store went away: %s", st->err);
    st->broken = false;
    return PRISM_STORE_OK;
}

/* Sends one request (header + up to three body parts) and, unless NOREPLY,
 * reads its reply into `rep` (exactly `rep_len` bytes expected). A store
 * that went away is connected to again first; a request it never received
 * (the send failed: the old store was gone already) is sent to the new one. */
static prism_store_status call(prism_store *st, uint16_t type, uint16_t flags, const void *a,
                               size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                               void *rep, size_t rep_len, int wait_ms)
{
    if (st->broken && reconnect(st) != PRISM_STORE_OK)
        return PRISM_STORE_DISCONNECTED;
    psp_hdr h = {.len = (uint32_t)(alen + blen + clen), .type = type, .flags = flags}, kh;
    psp_id_req kreq;
    struct iovec iov[SEND_IOV_MAX] = {{&kh, sizeof kh},  {&kreq, sizeof kreq}, {&h, sizeof h},
                                      {(void *)a, alen}, {(void *)b, blen},    {(void *)c, clen}};
    int skip = kept_drop(st, &kh, &kreq) ? 0 : 2;
    prism_store_status s = send_all(st, iov + skip, SEND_IOV_MAX - skip);
    /* the new store never hears of the old one's references */
    if (s == PRISM_STORE_DISCONNECTED && reconnect(st) == PRISM_STORE_OK)
        s = send_all(st, iov + 2, SEND_IOV_MAX - 2);
    if (s != PRISM_STORE_OK || (flags & PSP_FLAG_NOREPLY))
        return s;
    int limit = wait_ms < 0 ? -1 : wait_ms + REPLY_GRACE_MS;
    /* header and body in one recv: replies are small and of known length */
    uint8_t buf[sizeof(psp_hdr) + REPLY_MAX];
    if (rep_len > REPLY_MAX)
        return fail(st, PRISM_STORE_INVALID, "reply buffer too large");
    if ((s = recv_all(st, buf, sizeof(psp_hdr) + rep_len, limit)) != PRISM_STORE_OK)
        return s;
    psp_hdr rh;
    memcpy(&rh, buf, sizeof rh);
    if (rh.type != (type | PSP_REPLY) || rh.len != rep_len)
        return fail(st, PRISM_STORE_PROTOCOL, "object store: unexpected reply type %u length %u",
                    rh.type, rh.len);
    memcpy(rep, buf + sizeof rh, rep_len);
    int32_t status;
    memcpy(&status, rep, sizeof status);
    if (status < 0 || status > PRISM_STORE_PROTOCOL)
        return fail(st, PRISM_STORE_PROTOCOL, "object store: bad status %d", status);
    return set_status(st, (prism_store_status)status);
}

static int recv_fd(int sock, void *buf, size_t len, int *fd_out)
{
    char ctrl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl};
    ssize_t n;
    do
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            memcpy(fd_out, CMSG_DATA(c), sizeof(int));
            return 0;
        }
    return -1;
}

static prism_store_status handshake(prism_store *st)
{
    psp_hello_req req = {.version = PSP_VERSION, .pid = (uint32_t)getpid()};
    psp_hdr h = {.len = sizeof req, .type = PSP_HELLO};
    struct iovec iov[4] = {{&h, sizeof h}, {&req, sizeof req}};
    prism_store_status s = send_all(st, iov, 2);
    if (s != PRISM_STORE_OK)
        return s;
    struct {
        psp_hdr h;
        psp_hello_rep r;
    } rep;
    int afd = -1;
    struct pollfd p = {.fd = st->fd, .events = POLLIN};
    if (poll(&p, 1, REPLY_GRACE_MS) != 1 || recv_fd(st->fd, &rep, sizeof rep, &afd) != 0)
        return fail(st, PRISM_STORE_PROTOCOL, "object store: bad handshake reply");
    if (rep.h.type != (PSP_HELLO | PSP_REPLY) || rep.h.len != sizeof rep.r ||
        rep.r.status != PRISM_STORE_OK || rep.r.version != PSP_VERSION) {
        close(afd);
        return fail(st, PRISM_STORE_PROTOCOL, "object store: handshake refused (version %u)",
                    rep.r.version);
    }
    /* Mapping every page of the arena at connect (MAP_POPULATE) spares the
     * first puts and gets their page faults, but costs each client 0.1 s
     * and 2 MiB of page tables per GiB of arena, and its exit 20 ms per GiB
     * to unmap them. So only a small arena is mapped whole, and only by a
     * client that is not lazy (a worker must be ready at once, and its
     * lease's resources wait for its exit); otherwise large creates and
     * gets map their chunks as they come (map_span). */
    bool prefaulted = rep.r.flags & PSP_ARENA_PREFAULTED;
    bool all = prefaulted && !st->lazy && rep.r.arena_size <= MAP_ALL_MAX;
    void *m = mmap(NULL, rep.r.arena_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | (all ? MAP_POPULATE : 0), afd, 0);
    close(afd);
    if (m == MAP_FAILED)
        return fail(st, PRISM_STORE_ERROR, "object store: mmap of %llu bytes: %s",
                    (unsigned long long)rep.r.arena_size, strerror(errno));
    st->arena = m;
    st->arena_size = rep.r.arena_size;
    uint64_t chunks = (st->arena_size >> CHUNK_SHIFT) + 1;
    st->mapped = prefaulted && !all ? calloc((chunks + 63) / 64, sizeof *st->mapped) : NULL;
    rep.r.url[sizeof rep.r.url - 1] = '\0';
    memcpy(st->url, rep.r.url, sizeof st->url);
    return PRISM_STORE_OK;
}

/* Connects to st->path and maps the store's arena. */
static prism_store_status open_store(prism_store *st)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, st->path);
    st->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (st->fd < 0 || connect(st->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return fail(st, PRISM_STORE_DISCONNECTED, "cannot connect to object store at %s: %s",
                    st->path, strerror(errno));
    return handshake(st);
}

prism_store_status prism_store_connect(prism_store **out, const char *socket_path, char *err,
                                       size_t errlen)
{
    return prism_store_connect_lazy(out, socket_path, false, err, errlen);
}

prism_store_status prism_store_connect_lazy(prism_store **out, const char *socket_path, bool lazy,
                                            char *err, size_t errlen)
{
    *out = NULL;
    prism_store *st = calloc(1, sizeof *st);
    if (!st) {
        if (err)
            snprintf(err, errlen, "out of memory");
        return PRISM_STORE_ERROR;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->lazy = lazy;
    st->rcv_timeout_ms = -1;
    st->fd = -1;
    prism_store_status s = PRISM_STORE_OK;
    struct sockaddr_un sa;
    if (!socket_path || strlen(socket_path) >= sizeof sa.sun_path)
        s = fail(st, PRISM_STORE_INVALID, "object store socket path is missing or too long");
    else if (!(st->path = strdup(socket_path)))
        s = fail(st, PRISM_STORE_ERROR, "out of memory");
    else
        s = open_store(st);
    if (s != PRISM_STORE_OK) {
        if (err)
            snprintf(err, errlen, "%s", st->err);
        prism_store_destroy(st);
        return s;
    }
    *out = st;
    return PRISM_STORE_OK;
}

void prism_store_destroy(prism_store *st)
{
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    if (st->arena)
        munmap(st->arena, st->arena_size);
    free(st->mapped);
    st->keep_old = false;
    unmap_old(st);
    free(st->held.slots);
    free(st->stale.slots);
    free(st->path);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

uint64_t prism_store_capacity(const prism_store *st) { return st->arena_size; }

const char *prism_store_url(const prism_store *st) { return st ? st->url : ""; }

const char *prism_store_last_error(const prism_store *st) { return st->err; }

/* The chunks of [p, p + len) (a range of the current arena) this process
 * has not mapped yet, as one span to populate, now marked mapped. With
 * `mu` held; the populate itself runs unlocked. Only when the store has all
 * its pages (mapping them allocates nothing), the arena was not mapped
 * whole, and for large objects: a small one faults its few pages in as it
 * is used. */
typedef struct span {
    uint8_t *p;
    uint64_t len;
} span;

static span map_span(prism_store *st, const uint8_t *p, uint64_t len)
{
    span none = {NULL, 0};
    if (!st->mapped || len < POPULATE_MIN)
        return none;
    uint64_t off = (uint64_t)(p - st->arena), first = UINT64_MAX, last = 0;
    for (uint64_t c = off >> CHUNK_SHIFT; c <= (off + len - 1) >> CHUNK_SHIFT; c++) {
        uint64_t bit = 1ull << (c & 63);
        if (st->mapped[c >> 6] & bit)
            continue;
        st->mapped[c >> 6] |= bit;
        first = first < c ? first : c;
        last = c;
    }
    if (first == UINT64_MAX)
        return none;
    uint64_t a = first << CHUNK_SHIFT, z = (last + 1) << CHUNK_SHIFT;
    if (z > st->arena_size)
        z = st->arena_size;
    return (span){st->arena + a, z - a};
}

/* Maps a span's pages in this process at once (one call, not a fault
 * every 4 KiB while the creator writes or the reader reads): a large put
 * then runs at memcpy's speed. As MAP_POPULATE does for a shared mapping,
 * by read faults, which map 16 pages each (fault-around) and, the arena
 * being shared memory, writable: three times as fast here as write faults.
 * Best effort: a kernel without MADV_POPULATE_READ (before 5.14) faults
 * them in as they come. */
static void populate(span s)
{
#ifdef MADV_POPULATE_READ
    if (s.len)
        (void)madvise(s.p, s.len, MADV_POPULATE_READ);
#else
    (void)s;
#endif
}

/* The data of an arena range from a reply, checked against the mapping. */
static uint8_t *arena_ptr(prism_store *st, uint64_t off, uint64_t len)
{
    if (off > st->arena_size || len > st->arena_size - off)
        return NULL;
    return st->arena + off;
}

/* The body of a CREATE or PUT. */
static psp_create_req create_req(const prism_object_id *id, const prism_id *owner, uint64_t size,
                                 uint32_t metadata_size)
{
    psp_create_req req = {.metadata_size = metadata_size, .data_size = size};
    memcpy(req.id, id->b, sizeof req.id);
    if (owner)
        memcpy(req.owner, owner->b, sizeof req.owner);
    return req;
}

prism_store_status prism_store_create(prism_store *st, const prism_object_id *id,
                                      const prism_id *owner, uint64_t size, const void *metadata,
                                      uint32_t metadata_size, unsigned flags, uint8_t **data)
{
    if (!id || !data || metadata_size > PRISM_STORE_MAX_METADATA || (metadata_size && !metadata))
        return fail(st, PRISM_STORE_INVALID, "create: bad arguments");
    psp_create_req req = create_req(id, owner, size, metadata_size);
    psp_create_rep rep;
    pthread_mutex_lock(&st->mu);
    prism_store_status s = call(st, PSP_CREATE, (flags & PRISM_STORE_PIN) ? PSP_FLAG_PIN : 0, &req,
                                sizeof req, metadata, metadata_size, NULL, 0, &rep, sizeof rep, 0);
    if (s == PRISM_STORE_OK) {
        *data = arena_ptr(st, rep.offset, size + metadata_size);
        if (!*data) {
            s = fail(st, PRISM_STORE_PROTOCOL, "create: offset outside the arena");
        } else {
            held_add(&st->held, id, 1);
        }
    } else if (s == PRISM_STORE_TOO_LARGE) {
        s = fail(st, s, "object of %llu bytes is larger than the object store's arena (%llu bytes)",
                 (unsigned long long)size, (unsigned long long)st->arena_size);
    } else if (s == PRISM_STORE_OUT_OF_MEMORY) {
        s = fail(st, s,
                 "object store is out of memory: no room for %llu bytes even after evicting "
                 "and spilling (the rest is in use by readers or unsealed objects)",
                 (unsigned long long)size);
    }
    span fill = s == PRISM_STORE_OK ? map_span(st, *data, size + metadata_size) : (span){0};
    pthread_mutex_unlock(&st->mu);
    populate(fill); /* unlocked: other calls need not wait for it */
    return s;
}

static prism_store_status id_call(prism_store *st, uint16_t type, const prism_object_id *id)
{
    if (!id)
        return fail(st, PRISM_STORE_INVALID, "missing object ID");
    psp_id_req req;
    memcpy(req.id, id->b, sizeof req.id);
    psp_status_rep rep;
    pthread_mutex_lock(&st->mu);
    prism_store_status s;
    bool ends_create = type == PSP_SEAL || type == PSP_ABORT;
    if (type == PSP_DELETE && is_kept(st, id))
        st->kept.gettable = false; /* gets of it now ask the store: not found */
    /* a create in progress on the new store is the one meant, else the old one */
    if (ends_create && !held_find(&st->held, id) && stale_drop(st, id))
        s = fail(st, PRISM_STORE_DISCONNECTED,
                 "the object store went away before the object was sealed");
    else
        s = call(st, type, 0, &req, sizeof req, NULL, 0, NULL, 0, &rep, sizeof rep, 0);
    held_slot *e;
    /* a seal or abort ends this handle's write access whatever the answer */
    if (ends_create && (e = held_find(&st->held, id)))
        held_drop(&st->held, e);
    pthread_mutex_unlock(&st->mu);
    return s;
}

prism_store_status prism_store_seal(prism_store *st, const prism_object_id *id)
{
    return id_call(st, PSP_SEAL, id);
}

prism_store_status prism_store_abort(prism_store *st, const prism_object_id *id)
{
    return id_call(st, PSP_ABORT, id);
}

prism_store_status prism_store_delete(prism_store *st, const prism_object_id *id)
{
    return id_call(st, PSP_DELETE, id);
}

prism_store_status prism_store_pin(prism_store *st, const prism_object_id *id)
{
    return id_call(st, PSP_PIN, id);
}

prism_store_status prism_store_unpin(prism_store *st, const prism_object_id *id)
{
    return id_call(st, PSP_UNPIN, id);
}

prism_store_status prism_store_put(prism_store *st, const prism_object_id *id,
                                   const prism_id *owner, const void *data, uint64_t size,
                                   const void *metadata, uint32_t metadata_size, unsigned flags)
{
    if (!id || (size && !data) || metadata_size > PRISM_STORE_MAX_METADATA ||
        (metadata_size && !metadata))
        return fail(st, PRISM_STORE_INVALID, "put: bad arguments");
    if (size > PSP_INLINE_MAX) {
        uint8_t *p;
        prism_store_status s =
            prism_store_create(st, id, owner, size, metadata, metadata_size, flags, &p);
        if (s != PRISM_STORE_OK)
            return s;
        memcpy(p, data, size);
        return prism_store_seal(st, id);
    }
    psp_create_req req = create_req(id, owner, size, metadata_size);
    uint16_t pf = (flags & PRISM_STORE_PIN) ? PSP_FLAG_PIN : 0;
    pthread_mutex_lock(&st->mu);
    /* A creator often reads what it put: the put keeps a reference for it,
     * unless the kept object is still being read (then no new one). A HOLD
     * reply is a GET's; a plain one is its first field, the status. */
    bool hold = !(st->kept.valid && st->kept.users);
    psp_get_rep rep;
    prism_store_status s = call(st, PSP_PUT, pf | (hold ? PSP_FLAG_HOLD : 0), &req, sizeof req,
                                metadata, metadata_size, data, (size_t)size, &rep,
                                hold ? sizeof rep : sizeof(psp_status_rep), 0);
    if (s == PRISM_STORE_OK && hold) {
        uint8_t *p = arena_ptr(st, rep.offset, rep.data_size + rep.metadata_size);
        if (!p || rep.data_size != size || rep.metadata_size != metadata_size) {
            s = fail(st, PRISM_STORE_PROTOCOL, "put: object outside the arena");
        } else if (held_add(&st->held, id, 1) == 0) {
            st->kept.valid = st->kept.gettable = true;
            st->kept.users = 0;
            st->kept.id = *id;
            st->kept.buf = (prism_store_buffer){p, size, p + size, metadata_size};
        } else { /* out of memory to track it: the reference goes back now */
            psp_id_req r;
            memcpy(r.id, id->b, sizeof r.id);
            call(st, PSP_RELEASE, PSP_FLAG_NOREPLY, &r, sizeof r, NULL, 0, NULL, 0, NULL, 0, 0);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

prism_store_status prism_store_get(prism_store *st, const prism_object_id *id, int timeout_ms,
                                   prism_store_buffer *out)
{
    if (!id || !out)
        return fail(st, PRISM_STORE_INVALID, "get: bad arguments");
    psp_get_req req = {.timeout_ms = timeout_ms < 0 ? -1 : timeout_ms};
    memcpy(req.id, id->b, sizeof req.id);
    psp_get_rep rep;
    pthread_mutex_lock(&st->mu);
    if (is_kept(st, id) && st->kept.gettable && held_add(&st->held, id, 1) == 0) {
        st->kept.users++;
        *out = st->kept.buf;
        prism_store_status s = set_status(st, PRISM_STORE_OK);
        pthread_mutex_unlock(&st->mu);
        return s;
    }
    prism_store_status s =
        call(st, PSP_GET, 0, &req, sizeof req, NULL, 0, NULL, 0, &rep, sizeof rep, req.timeout_ms);
    span fill = {0};
    if (s == PRISM_STORE_OK) {
        uint8_t *p = arena_ptr(st, rep.offset, rep.data_size + rep.metadata_size);
        if (!p || rep.metadata_size > PRISM_STORE_MAX_METADATA) {
            s = fail(st, PRISM_STORE_PROTOCOL, "get: object outside the arena");
        } else {
            out->data = p;
            out->size = rep.data_size;
            out->metadata = p + rep.data_size;
            out->metadata_size = rep.metadata_size;
            held_add(&st->held, id, 1);
            fill = map_span(st, p, rep.data_size + rep.metadata_size);
        }
    }
    pthread_mutex_unlock(&st->mu);
    populate(fill);
    return s;
}

prism_store_status prism_store_release(prism_store *st, const prism_object_id *id)
{
    if (!id)
        return fail(st, PRISM_STORE_INVALID, "missing object ID");
    psp_id_req req;
    memcpy(req.id, id->b, sizeof req.id);
    pthread_mutex_lock(&st->mu);
    prism_store_status s = PRISM_STORE_OK;
    held_slot *k = is_kept(st, id) ? held_find(&st->held, id) : NULL;
    /* A get answered from the kept reference, or one this handle never took
     * (ignored, as the store would: the kept reference stays); a get the
     * store answered (after a delete of it here, of an object put again
     * under the ID) is released below. */
    if (k && (st->kept.users || k->count <= 1)) {
        if (st->kept.users) {
            st->kept.users--;
            held_drop(&st->held, k);
        }
        pthread_mutex_unlock(&st->mu);
        return s;
    }
    /* An ID held from both stores: the old one is let go first, so that the
     * new store never loses a reader too early (the old arena then stays
     * mapped until destroy, as either pointer may still be in use). */
    if (!stale_drop(st, id)) {
        held_slot *e = held_find(&st->held, id);
        if (e)
            held_drop(&st->held, e);
        s = call(st, PSP_RELEASE, PSP_FLAG_NOREPLY, &req, sizeof req, NULL, 0, NULL, 0, NULL, 0, 0);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

prism_store_status prism_store_contains(prism_store *st, const prism_object_id *id,
                                        prism_store_presence *out)
{
    if (!id || !out)
        return fail(st, PRISM_STORE_INVALID, "contains: bad arguments");
    psp_id_req req;
    memcpy(req.id, id->b, sizeof req.id);
    psp_contains_rep rep;
    pthread_mutex_lock(&st->mu);
    prism_store_status s =
        call(st, PSP_CONTAINS, 0, &req, sizeof req, NULL, 0, NULL, 0, &rep, sizeof rep, 0);
    if (s == PRISM_STORE_OK)
        *out = rep.presence <= PRISM_STORE_PRESENT_SPILLED ? (prism_store_presence)rep.presence
                                                           : PRISM_STORE_ABSENT;
    pthread_mutex_unlock(&st->mu);
    return s;
}

prism_store_status prism_store_stats_get(prism_store *st, prism_store_stats *out)
{
    if (!out)
        return fail(st, PRISM_STORE_INVALID, "stats: bad arguments");
    psp_stats_rep rep;
    _Static_assert(sizeof rep.v == sizeof *out, "stats fields");
    pthread_mutex_lock(&st->mu);
    prism_store_status s = call(st, PSP_STATS, 0, NULL, 0, NULL, 0, NULL, 0, &rep, sizeof rep, 0);
    if (s == PRISM_STORE_OK)
        memcpy(out, rep.v, sizeof *out);
    pthread_mutex_unlock(&st->mu);
    return s;
}
