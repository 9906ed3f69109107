/* Inside the channel library: the endpoints of both transports, the layout
 * of the shared segment, and the waiting helpers they share. The layout and
 * its memory ordering are explained in docs/dags.md#channels. */
#ifndef PRISM_CHAN_INTERNAL_H
#define PRISM_CHAN_INTERNAL_H

#include <stdatomic.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "prism_channel.h"

/* Writer and readers may be distinct processes: every atomic in the segment
 * must be lock-free, or the "lock" would live in one process's memory. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

#define CHAN_LINE 64 /* cache line: fields written by different sides never share one */
#define CHAN_MAGIC 0x314843534952500aULL /* "\nPRISCH1" */
/* 2: publish stamps and readers' latency histograms; 3: data in the head's line */
#define CHAN_VERSION 3

/* Who holds the writer's or a reader's place. */
enum { CHAN_FREE = 0, CHAN_ATTACHED = 1, CHAN_LEFT = 2 };

/* The head of the segment: one line of geometry (written once, at creation),
 * one the writer writes, one readers write. */
typedef struct chan_hdr {
    uint64_t magic;
    uint32_t version, nslots, nreaders, pad0;
    uint64_t slot_size;   /* max_buf_size */
    uint64_t slot_stride; /* a slot's header line and data, rounded to lines */
    uint64_t readers_off, slots_off, total_size;

    /* Written by the writer. */
    _Atomic uint32_t pub_word;       /* futex readers sleep on; bumped after a publish
                                      * or close when a reader flagged itself asleep */
    _Atomic uint32_t closed;         /* 1: end of stream after the last published value */
    _Atomic uint32_t writer_waiting; /* 1 while the writer sleeps on rel_word */
    _Atomic uint32_t writer_state;   /* CHAN_FREE / CHAN_ATTACHED / CHAN_LEFT */
    _Atomic int32_t writer_pid;
    uint32_t pad2;
    _Atomic uint64_t writer_start; /* the writer process's start time (/proc): a reused
                                    * pid is not mistaken for the writer */
    char pad3[CHAN_LINE - 32];

    /* Written by readers. */
    _Atomic uint32_t readers_waiting; /* readers asleep on pub_word */
    _Atomic uint32_t rel_word;        /* futex the writer sleeps on; bumped after a
                                       * release when writer_waiting was set */
    char pad4[CHAN_LINE - 8];
} chan_hdr;
_Static_assert(sizeof(chan_hdr) == 3 * CHAN_LINE, "chan_hdr is three lines");

/* One per reader, each on lines of its own: the writer only reads the first.
 * The other two are the reader's latency histogram, which only it writes and
 * anyone who maps the segment may read (relaxed: counters, not a protocol). */
typedef struct chan_reader_line {
    _Atomic uint64_t released; /* values this reader released (it reads released + 1 next) */
    _Atomic uint32_t state;    /* CHAN_FREE / CHAN_ATTACHED / CHAN_LEFT */
    _Atomic int32_t pid;
    _Atomic uint64_t start; /* process start time, as writer_start */
    char pad[CHAN_LINE - 24];
    _Atomic uint64_t hist[PRISM_CHAN_HIST_BUCKETS]; /* prism_chan_hist */
    _Atomic uint64_t hist_sum_ns;
} chan_reader_line;
_Static_assert(sizeof(chan_reader_line) == 3 * CHAN_LINE, "three lines per reader");

/* A slot: its head, then its data at once, so that a value of up to 40
 * bytes shares the line of seq: a reader that sees seq has the value in
 * the same line, one line to wait for instead of two (bench/README.md#
 * a-small-value-in-its-slots-first-line). Value k (from 1) is in slot
 * (k - 1) % nslots, and seq == k once it is published. */
typedef struct chan_slot {
    _Atomic uint64_t seq;
    uint64_t len;  /* written before seq (release), read after it (acquire) */
    int64_t stamp; /* CLOCK_MONOTONIC ns of the publish (timed values); as len */
    uint8_t data[];
} chan_slot;
_Static_assert(sizeof(chan_slot) == 24, "a slot's head leaves 40 bytes of its line to data");

struct prism_chan {
    int fd; /* the mapping's own fd (creator: the memfd; opener: a dup) */
    uint8_t *base;
    size_t size;
    chan_hdr *hdr;
    /* The geometry, checked once and copied here: a peer that scribbles on
     * the header cannot make this process address outside the mapping. */
    uint32_t nslots, nreaders;
    uint64_t slot_size, slot_stride, readers_off, slots_off;
};

static inline chan_reader_line *chan_reader_at(const prism_chan *ch, uint32_t i)
{
    return (chan_reader_line *)(ch->base + ch->readers_off) + i;
}

static inline chan_slot *chan_slot_at(const prism_chan *ch, uint32_t i)
{
    return (chan_slot *)(ch->base + ch->slots_off + (size_t)i * ch->slot_stride);
}

static inline uint8_t *chan_slot_data(chan_slot *s) { return s->data; }

enum { CHAN_KIND_SHM = 1, CHAN_KIND_SOCKET = 2, CHAN_KIND_FANOUT = 3 };

struct prism_chan_writer {
    int kind;
    prism_chan_wait wait;
    bool cpu_shared; /* chan_spin_yield's guess */
    bool writing;    /* between begin_write and end_write/abort */
    bool closed;
    union {
        struct {
            prism_chan *ch;
            uint64_t next;     /* the value to write next, from 1 */
            uint32_t slot;     /* its slot: (next - 1) % nslots */
            uint64_t floor;    /* a lower bound of every reader's `released`: values up to
                                * floor + nslots may be written without looking again */
            int64_t live_next; /* no liveness check before this time (a caller polling
                                * with timeout 0 must not read /proc every time) */
            bool dead;         /* a reader died: the ring is stuck for good */
        } shm;
        struct {
            int fd;
            uint64_t cap;       /* max_buf_size */
            uint8_t *buf;       /* 4-byte header, 8-byte stamp, cap */
            const uint8_t *src; /* the pending frame's bytes when they are another
                                 * writer's (a fan-out's first), else NULL: buf */
            uint64_t next;      /* the value to write next, from 1 (one in 8 is stamped) */
            size_t base;        /* where the published frame starts in buf (no stamp: 8) */
            size_t frame;       /* bytes of the published frame (0: none pending) */
            size_t sent;        /* of them, handed to the kernel */
            int timeout_ms;     /* of the begun write: end_write waits as long */
            bool ending;        /* close queued the end-of-stream mark */
            bool broken;        /* the peer is gone: every call says PEER_DEAD */
        } sock;
        struct {
            prism_chan_writer **w; /* owned */
            void **bufs;           /* each one's buffer of the begun write */
            size_t n, begun;       /* writers; of them, begun so far (in order) */
            bool shared;           /* all sockets: they send the first one's frame */
        } fan;
    } u;
};

struct prism_chan_reader {
    int kind;
    prism_chan_wait wait;
    bool cpu_shared; /* chan_spin_yield's guess */
    bool reading;
    union {
        struct {
            prism_chan *ch;
            uint32_t index;
            uint64_t next; /* the value to read next, from 1 */
            uint32_t slot;
            int64_t live_next; /* as the writer's */
            bool dead;         /* the writer died, and everything it published was read */
        } shm;
        struct {
            int fd;
            uint64_t cap;
            uint8_t *buf;
            size_t bufsize;
            size_t start, end;        /* received bytes not yet released: [start, end) */
            size_t frame;             /* bytes of the frame handed out by begin_read */
            prism_chan_status broken; /* OK, or what every later call returns */
            /* The latency of stamped frames (prism_chan_reader_get_hist):
             * written by the reader's thread, read by any. */
            _Atomic uint64_t hist[PRISM_CHAN_HIST_BUCKETS];
            _Atomic uint64_t hist_sum_ns;
        } sock;
    } u;
};

/* ---------- shared helpers (prism_channel.c) ---------- */

int64_t chan_now_ns(void);
/* CLOCK_REALTIME in ns: the socket transport's stamps, compared across hosts. */
int64_t chan_wall_ns(void);
/* Adds one latency to a histogram that only the caller's thread writes. */
void chan_count_latency(_Atomic uint64_t *hist, _Atomic uint64_t *sum_ns, int64_t ns);
/* The absolute deadline of a timeout (INT64_MAX for < 0). */
int64_t chan_deadline(int timeout_ms);
void chan_wait_defaults(prism_chan_wait *dst, const prism_chan_wait *src);

/* A spinning wait also yields the CPU each time it reads the clock, so that
 * a peer sharing the CPU (more processes than CPUs) runs at once instead of
 * after the whole spin. A side alone on its CPU first spins SPIN_ALONE_NS
 * without yielding: sched_yield then returns at once, but it is a syscall
 * (0.1-0.5 us, over 1 us on some VMs), longer than a hop. Whether the CPU
 * is shared is learnt from the last yield: one that took YIELD_RAN_NS more
 * than the quickest this process has timed ran another process. Not a
 * fixed bound: where a syscall alone takes longer than it, every yield
 * would count as shared, and the wait would yield at every look. */
#define SPIN_ALONE_NS 2000
#define YIELD_RAN_NS 1000

/* Yields once; sets `*shared` from how long that took. `now`: just before. */
void chan_yield(bool *shared, int64_t now);
/* Whether a yield that took `took` ns ran another process: YIELD_RAN_NS
 * more than the quickest one timed, `*floor` (which it lowers). */
bool chan_yield_ran_other(_Atomic int64_t *floor, int64_t took);

/* Where a spinning wait that began at `began` and looks at the clock at
 * `now` yields; `*shared` is the endpoint's guess that its CPU is shared. */
static inline void chan_spin_yield(bool *shared, int64_t began, int64_t now)
{
    if (!*shared && now - began <= SPIN_ALONE_NS)
        return;
    chan_yield(shared, now);
}

static inline void chan_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* FUTEX_WAIT on a word of the shared segment (not _PRIVATE: the waker may be
 * another process) for at most `ns` (< 0: no bound). Returns when woken, when
 * the word no longer holds `expected`, on a signal or at the timeout; the
 * caller re-checks its condition in every case. */
void chan_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t ns);
void chan_futex_wake(_Atomic uint32_t *word, int n);

/* This process's start time in clock ticks since boot (field 22 of
 * /proc/self/stat; 0 when unknown). */
uint64_t chan_self_start(void);
/* Whether the process that attached as `pid` (started at `start`) still
 * runs: false when /proc has no such pid, it is a zombie, or the pid now
 * belongs to a process started at another time. Unknown (pid 0, no /proc)
 * counts as alive: only a proven death is reported. */
bool chan_process_alive(int32_t pid, uint64_t start);

/* Per transport (prism_chan_shm.c, prism_chan_sock.c). */
prism_chan_status chan_shm_begin_write(prism_chan_writer *w, void **buf, int timeout_ms);
prism_chan_status chan_shm_end_write(prism_chan_writer *w, size_t len);
void chan_shm_writer_close(prism_chan_writer *w);
void chan_shm_writer_free(prism_chan_writer *w);
prism_chan_status chan_shm_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                      int timeout_ms);
void chan_shm_end_read(prism_chan_reader *r);
void chan_shm_reader_free(prism_chan_reader *r);

prism_chan_status chan_sock_begin_write(prism_chan_writer *w, void **buf, int timeout_ms);
prism_chan_status chan_sock_end_write(prism_chan_writer *w, size_t len);
/* A fan-out's end_write on sockets without copying the value: `first`'s
 * frame made (chan_sock_frame), then each other writer given the same
 * frame to send from `first`'s buffer (chan_sock_share), which nobody
 * writes again until every one of them sent it (the fan-out's begin_write
 * flushes them all first). chan_sock_send sends as end_write does. */
void chan_sock_frame(prism_chan_writer *w, size_t len);
void chan_sock_share(prism_chan_writer *w, const prism_chan_writer *first);
prism_chan_status chan_sock_send(prism_chan_writer *w);
prism_chan_status chan_sock_flush(prism_chan_writer *w, int timeout_ms);
prism_chan_status chan_sock_writer_close(prism_chan_writer *w, int timeout_ms);
void chan_sock_writer_free(prism_chan_writer *w);
prism_chan_status chan_sock_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                       int timeout_ms);
void chan_sock_end_read(prism_chan_reader *r);
void chan_sock_reader_free(prism_chan_reader *r);

#endif
