/* Channels: the data path of accelerated DAGs (docs/dags.md#channels).
 *
 * A channel carries a stream of byte values from one writer to its readers.
 * A DAG is compiled once into channels between actors; executing it only
 * writes the input channel and reads the output one, so a hop costs
 * microseconds and no request, lookup or allocation. Two transports share
 * one API (prism_chan_writer, prism_chan_reader):
 *
 *   - shared memory, same node: a ring of `nslots` slots of `max_buf_size`
 *     bytes in a memfd that the writer and its `nreaders` readers map.
 *     Values are written and read in place (zero copy); every value goes to
 *     every reader (fan-out), and a slot is reused only once all readers
 *     released it. The fast path is atomics only; a side that must wait
 *     spins briefly, then sleeps on a futex in the segment.
 *   - a connected stream socket (TCP across nodes, or Unix): length-prefixed
 *     frames, one reader. The channel only frames bytes: authenticate the
 *     socket before handing it over (the direct protocol's HMAC
 *     challenge-response on the cluster token, libs/proto/prism_wire.h).
 *     Bytes go to the fd with send/recv, so the stream is not encrypted; a
 *     cluster that runs TLS (prism_wire_tls.h) needs a transport over the
 *     TLS session, which this one is not.
 *
 * Writer, shared memory (the creator passes the segment's fd to the readers'
 * processes, e.g. with prism_chan_send_fd over a Unix socket):
 *
 *   prism_chan *ch;
 *   prism_chan_options o = {.nslots = 8, .nreaders = 1, .max_buf_size = 1 << 20};
 *   char err[256];
 *   if (prism_chan_create(&ch, &o, err, sizeof err) != PRISM_CHAN_OK) fail(err);
 *   prism_chan_send_fd(unix_sock, prism_chan_fd(ch));
 *   prism_chan_writer *w;
 *   prism_chan_writer_open_shm(&w, ch, NULL);
 *   void *p;
 *   if (prism_chan_begin_write(w, &p, 1000) == PRISM_CHAN_OK) {  // a free slot
 *       size_t n = produce(p, prism_chan_writer_capacity(w));   // write in place
 *       prism_chan_end_write(w, n);                               // publish it
 *   }
 *   prism_chan_writer_close(w, 1000);  // readers see PRISM_CHAN_CLOSED after the last value
 *   prism_chan_writer_destroy(w);
 *   prism_chan_destroy(ch);
 *
 * Reader:
 *
 *   int fd; prism_chan_recv_fd(unix_sock, &fd);
 *   prism_chan_open_fd(&ch, fd, err, sizeof err); close(fd);
 *   prism_chan_reader_open_shm(&r, ch, 0, NULL);   // reader 0 of nreaders
 *   const void *p; size_t n;
 *   while (prism_chan_begin_read(r, &p, &n, -1) == PRISM_CHAN_OK) {
 *       consume(p, n);              // in place: valid until end_read
 *       prism_chan_end_read(r);     // the slot may be reused once every reader released it
 *   }
 *
 * Ownership. Handles come in create/open and destroy pairs. The library never
 * closes a file descriptor it was given: the caller keeps (and closes) the fd
 * passed to prism_chan_open_fd and the sockets passed to the socket
 * endpoints. Buffers handed out by begin_write/begin_read belong to the
 * channel and stay valid until the matching end (or abort, or destroy). A
 * prism_chan (the mapping) must outlive the endpoints opened on it.
 *
 * Threads. An endpoint is used by one thread at a time (it is the one writer,
 * or one of the readers); distinct endpoints of one channel may run in
 * distinct threads or processes. Nothing here takes a lock.
 *
 * Memory ordering (shm), what callers may rely on: everything the writer
 * stored into the buffer before end_write is visible to a reader once its
 * begin_read returns that value (the slot's sequence number is stored with
 * release and loaded with acquire), and everything a reader did with the
 * value before end_read is finished before the writer's begin_write hands
 * that slot out again (each reader's release count likewise). So the bytes
 * need no atomics or fences of their own. How waiting and waking stay
 * correct (seq_cst flags, futex words) is in docs/dags.md#channels.
 *
 * Errors are returned, never printed. PRISM_CHAN_ERROR leaves errno as the
 * failing system call set it. Timeouts are in milliseconds: < 0 waits without
 * a bound (a dead peer is still detected), 0 tries once without waiting. A
 * call that returns PRISM_CHAN_TIMEOUT changed nothing: no slot is left
 * half-written or half-read, and the call may simply be repeated.
 *
 * Values larger than max_buf_size are the caller's to move another way (the
 * DAG layer puts them in the object store and sends the reference): writes
 * return PRISM_CHAN_TOO_LARGE before waiting for anything.
 *
 * Dead peers. A process that dies cannot say so, and the fast path must not
 * pay for noticing: so only a side that is blocked looks. On shared memory
 * every endpoint records its pid and its process's start time in the
 * segment when it opens; a writer waiting for a slot, or a reader waiting for
 * a value, checks every liveness_ms (and when its timeout expires) whether
 * the process it waits for still exists (/proc/PID/stat: gone, a zombie, or
 * a pid reused by a process started later all count as dead), and returns
 * PRISM_CHAN_PEER_DEAD. Hence a dead peer is found within about liveness_ms
 * even by a wait without a timeout (a caller polling with timeout 0 gets
 * at most one /proc look per liveness_ms); a peer that is alive but stuck is
 * the caller's timeout to judge. Once an endpoint returned PEER_DEAD it
 * returns it on every later call: the channel is broken for good. Both ends must share a pid
 * namespace (the workers of one node do); an endpoint that has not attached yet has no pid, and is
 * waited for until the timeout. On a socket, death is the stream ending without close's end mark,
 * or a reset; a silent remote host is the caller's timeout (or TCP keepalive). */
#ifndef PRISM_CHANNEL_H
#define PRISM_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum prism_chan_status {
    PRISM_CHAN_OK = 0,
    PRISM_CHAN_TIMEOUT = 1,   /* nothing happened within the timeout; nothing changed */
    PRISM_CHAN_CLOSED = 2,    /* reader: the writer closed and every value was read (end of
                               * stream); writer: it closed, or (shm) no reader is left */
    PRISM_CHAN_TOO_LARGE = 3, /* the value is larger than max_buf_size */
    PRISM_CHAN_PEER_DEAD = 4, /* the process at the other end died (shm), or the socket
                               * was reset or stopped without the end mark */
    PRISM_CHAN_INVALID = 5,   /* a bad argument, or a call out of order (end without begin) */
    PRISM_CHAN_IN_USE = 6,    /* open: the writer or that reader index is already taken */
    PRISM_CHAN_PROTOCOL = 7,  /* the segment or the stream is not a channel's (bad magic,
                               * geometry, seals; a frame longer than max_buf_size) */
    PRISM_CHAN_ERROR = 8,     /* a system call failed; errno says why */
    PRISM_CHAN_QUEUED = 9,    /* socket end_write/write: the value is published, but part
                               * of it is still in the channel's buffer; it leaves with
                               * the next begin_write, flush or close */
} prism_chan_status;

/* A stable English text for a status ("timed out"). Never NULL. */
const char *prism_chan_status_text(prism_chan_status s);

/* ---------- the shared-memory segment ---------- */

/* Readers one segment may have: each has its own cache line that the writer
 * scans when the ring looks full, so the bound keeps that scan short. */
#define PRISM_CHAN_MAX_READERS 64
#define PRISM_CHAN_MAX_SLOTS (1u << 16)
#define PRISM_CHAN_DEFAULT_SLOTS 8
/* Largest slot: bigger values belong in the object store. */
#define PRISM_CHAN_MAX_BUF_SIZE ((uint64_t)1 << 32)

typedef struct prism_chan_options {
    uint32_t nslots;       /* ring length (values in flight); 0: PRISM_CHAN_DEFAULT_SLOTS */
    uint32_t nreaders;     /* readers every value goes to, 1..PRISM_CHAN_MAX_READERS */
    uint64_t max_buf_size; /* bytes of one value (one slot), 1..PRISM_CHAN_MAX_BUF_SIZE */
} prism_chan_options;

/* One mapping of a channel's segment in this process. */
typedef struct prism_chan prism_chan;

/* Creates a segment (a sealed memfd, its pages allocated now so that no hop
 * takes a page fault) and maps it. Nobody is attached yet: the writer stalls
 * once the ring is full until every one of the `nreaders` readers has
 * attached and read, so a reader that attaches late misses nothing. On
 * failure `*out` is NULL and `err` (may be NULL) says why. */
prism_chan_status prism_chan_create(prism_chan **out, const prism_chan_options *o, char *err,
                                    size_t errlen);
/* Maps the segment behind `fd` (received from its creator). The caller keeps
 * `fd`; the mapping holds its own reference. The segment is checked (magic,
 * version, geometry against its size, and the seals that stop a peer from
 * shrinking it under us, which would turn reads into SIGBUS). */
prism_chan_status prism_chan_open_fd(prism_chan **out, int fd, char *err, size_t errlen);
/* The segment's fd, owned by the mapping (valid until destroy): pass it on
 * with prism_chan_send_fd. */
int prism_chan_fd(const prism_chan *ch);
/* The geometry the segment was created with. */
void prism_chan_get_options(const prism_chan *ch, prism_chan_options *o);
/* Unmaps the segment; the memfd lives on while other processes hold it.
 * Destroy the endpoints opened on it first. NULL is a no-op. */
void prism_chan_destroy(prism_chan *ch);

/* Each reader of a segment counts how long its values waited between their
 * publish (end_write) and its begin_read: a hop's latency, queueing
 * included. Bucket 0 is under 1 µs, bucket i (1-13) from 2^(i-1) to 2^i µs,
 * the last 8192 µs or more. The counters live in the segment, so any
 * process that maps it (the DAG's driver) reads every reader's. One value in
 * PRISM_CHAN_HIST_EVERY is timed (the 1st, the 9th, ...): two clock reads
 * on every hop would add about 0.05 µs to one of 0.06 µs. */
#define PRISM_CHAN_HIST_BUCKETS 15
#define PRISM_CHAN_HIST_EVERY 8
#define PRISM_CHAN_HIST_SAMPLED(k) ((k) % PRISM_CHAN_HIST_EVERY == 1) /* k: value, from 1 */
typedef struct prism_chan_hist {
    uint64_t count[PRISM_CHAN_HIST_BUCKETS]; /* values timed */
    uint64_t sum_ns;                         /* of every latency counted */
} prism_chan_hist;
/* Reader `reader`'s histogram so far (zero for a reader out of range). */
void prism_chan_reader_hist(const prism_chan *ch, uint32_t reader, prism_chan_hist *out);

/* Passes `fd` over a connected Unix socket as SCM_RIGHTS (one byte of data
 * carries it). 0, or -1 with errno. */
int prism_chan_send_fd(int sock, int fd);
/* Receives an fd sent by prism_chan_send_fd; it is close-on-exec and the
 * caller's. 0, or -1 with errno (EPROTO: the message carried no fd). */
int prism_chan_recv_fd(int sock, int *fd);

/* ---------- waiting ---------- */

/* How an endpoint waits. Spinning costs a CPU but answers in well under a
 * microsecond; a futex sleep costs a wake-up of several microseconds, and the
 * peer a syscall, but a sleeping side costs nothing. So a waiting endpoint
 * polls for `spin_us` (yielding the CPU as it polls, for a peer that shares
 * it: at once when its last yield found the CPU shared, else after the first
 * 2 µs), then sleeps; the peer issues the wake
 * syscall only when a sleeper flagged itself, so while both sides keep up
 * nobody makes a syscall. */
typedef struct prism_chan_wait {
    uint32_t spin_us;     /* poll this long before sleeping; 0 sleeps at once (socket
                           * readers poll with non-blocking recv, then poll()) */
    uint32_t liveness_ms; /* shm: while blocked, check the peer's process this often;
                           * 0: the default */
} prism_chan_wait;

/* About the 50 µs the rest of Prism polls after work (docs/architecture.md):
 * a DAG's next value usually follows within it. */
#define PRISM_CHAN_DEFAULT_SPIN_US 50
#define PRISM_CHAN_DEFAULT_LIVENESS_MS 100

/* ---------- endpoints ---------- */

typedef struct prism_chan_writer prism_chan_writer;
typedef struct prism_chan_reader prism_chan_reader;

/* The histogram of reader endpoint `r` so far, from any thread: a shared
 * memory reader's (as above), or a socket reader's, which counts the frames
 * its writer stamped (one in PRISM_CHAN_HIST_EVERY, with CLOCK_REALTIME:
 * across hosts the difference includes their clocks' offset; a negative
 * one counts as 0). NULL: zeros. */
void prism_chan_reader_get_hist(const prism_chan_reader *r, prism_chan_hist *out);

/* The writer of a shared-memory channel (one per segment, ever: the value
 * sequence starts at its first write). `wait` may be NULL (defaults). The
 * writer records its pid so that readers notice when it dies. */
prism_chan_status prism_chan_writer_open_shm(prism_chan_writer **out, prism_chan *ch,
                                             const prism_chan_wait *wait);
/* Reader `index` (0..nreaders-1) of a shared-memory channel. It reads every
 * value from the first on; the writer waits for it (and notices if its
 * process dies). */
prism_chan_status prism_chan_reader_open_shm(prism_chan_reader **out, prism_chan *ch,
                                             uint32_t index, const prism_chan_wait *wait);

/* The writer end of a connected stream socket (max_buf_size below 2^31: the
 * frame's length is 32 bits, its top bit says a stamp follows, and its
 * largest value is the end mark). It owns one buffer of max_buf_size (plus
 * a 4-byte frame header and an 8-byte stamp) for
 * the whole life of the channel. The socket stays the caller's and may be blocking: the channel
 * sends and receives with MSG_DONTWAIT and waits with poll(), so it never
 * blocks past a timeout; it sends with MSG_NOSIGNAL (a vanished peer is
 * PRISM_CHAN_PEER_DEAD, not SIGPIPE). */
prism_chan_status prism_chan_writer_open_socket(prism_chan_writer **out, int sock,
                                                uint64_t max_buf_size, const prism_chan_wait *wait);
/* The reader end of a connected stream socket: frames are received into one
 * buffer owned by the channel (reused, no allocation per value). A frame
 * longer than max_buf_size breaks the channel (PRISM_CHAN_PROTOCOL). */
prism_chan_status prism_chan_reader_open_socket(prism_chan_reader **out, int sock,
                                                uint64_t max_buf_size, const prism_chan_wait *wait);

/* One writer over several (`ws[0..n)`, taken over: destroyed with it), for a
 * value that goes to readers behind several sockets. begin_write waits for
 * room in each in turn (those that had room stay begun across a timeout;
 * the next call goes on), hands out the first one's buffer; end_write
 * publishes the value in all (the worst status wins): sockets all send the
 * first one's frame, not a copy (so its buffer is free again only once each
 * took it: the next begin_write), other writers get a copy. Abort, flush,
 * close and destroy apply to each, the first one last. Capacity: the least. */
prism_chan_status prism_chan_writer_open_fanout(prism_chan_writer **out, prism_chan_writer **ws,
                                                size_t n);

/* The largest value the writer takes (max_buf_size). */
size_t prism_chan_writer_capacity(const prism_chan_writer *w);

/* Waits up to `timeout_ms` for room for one value and sets `*buf` to where to
 * write it (prism_chan_writer_capacity bytes, owned by the channel).
 *   shm:    a free slot: every reader released the value that was in it.
 *   socket: the previous frame fully handed to the kernel.
 * PRISM_CHAN_TIMEOUT: no room (nothing changed; try again). PRISM_CHAN_PEER_DEAD:
 * a reader the ring waits for died, or the socket is gone. PRISM_CHAN_CLOSED:
 * the writer was closed, or (shm, found when the ring is full) every reader
 * left. */
prism_chan_status prism_chan_begin_write(prism_chan_writer *w, void **buf, int timeout_ms);
/* Publishes the first `len` bytes of the buffer as the next value.
 * shm: never waits; readers see it at once. socket: waits up to the timeout
 * given to begin_write for the frame to be handed to the kernel, so that a
 * writer that goes on to block elsewhere leaves no half value behind;
 * PRISM_CHAN_QUEUED: published, not all sent yet (nothing is lost; call
 * prism_chan_flush before blocking on something the reader waits for).
 * PRISM_CHAN_TOO_LARGE: len is beyond the capacity, and the write stays begun
 * (end it with a valid length or abort it). */
prism_chan_status prism_chan_end_write(prism_chan_writer *w, size_t len);
/* Gives up a begun write: nothing is published and the room stays free. */
void prism_chan_abort_write(prism_chan_writer *w);
/* begin_write, a copy of `data`, end_write: for callers that already have the
 * value elsewhere. TOO_LARGE comes before any wait; each of the two waits is
 * bounded by `timeout_ms`. TIMEOUT: nothing was published; QUEUED: as
 * end_write. */
prism_chan_status prism_chan_write(prism_chan_writer *w, const void *data, size_t len,
                                   int timeout_ms);
/* socket: waits up to `timeout_ms` until every published byte is in the
 * kernel (TIMEOUT otherwise; nothing is lost, call again). shm: always OK. */
prism_chan_status prism_chan_flush(prism_chan_writer *w, int timeout_ms);
/* Ends the stream: readers get every value already published, then
 * PRISM_CHAN_CLOSED. shm: sleeping readers are woken. socket: published bytes
 * and an end-of-stream mark are sent, bounded by `timeout_ms` (TIMEOUT: not
 * closed yet, call again), then the socket's write side is shut down; a
 * stream that stops without the mark reads as a dead writer, so a crash is
 * never mistaken for an end. A begun write is aborted. Later writes return
 * PRISM_CHAN_CLOSED. Idempotent. */
prism_chan_status prism_chan_writer_close(prism_chan_writer *w, int timeout_ms);
/* Closes without waiting and frees the writer (socket: if the rest of a frame
 * or the end mark does not fit in the socket at once, the stream is cut and
 * the reader sees PRISM_CHAN_PEER_DEAD: close with a timeout first to be
 * sure). NULL is a no-op. */
void prism_chan_writer_destroy(prism_chan_writer *w);

/* Waits up to `timeout_ms` for the next value and points `*buf` and `*len`
 * at it, in place (shm: in the slot; socket: in the channel's buffer); read
 * only, valid until end_read. PRISM_CHAN_CLOSED: the writer closed and every
 * value was read. PRISM_CHAN_PEER_DEAD: the writer's process died without
 * closing (shm; values it published before are still read first), or the
 * socket was reset or stopped without the end mark.
 * PRISM_CHAN_TIMEOUT: nothing arrived (a partly received frame stays
 * buffered; nothing is lost). */
prism_chan_status prism_chan_begin_read(prism_chan_reader *r, const void **buf, size_t *len,
                                        int timeout_ms);
/* Releases the value of the last begin_read (shm: once every reader released
 * it, the writer may reuse its slot). PRISM_CHAN_INVALID without a begun read. */
prism_chan_status prism_chan_end_read(prism_chan_reader *r);
/* Frees the reader. On shm it leaves the channel for good: the writer stops
 * waiting for it (a writer whose readers all left gets PRISM_CHAN_CLOSED).
 * NULL is a no-op. */
void prism_chan_reader_destroy(prism_chan_reader *r);

#endif
