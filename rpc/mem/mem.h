/*
 * rpc/mem/mem.h - the runtime's allocator for its per-call objects
 * (internal).
 *
 * Why: a unary call allocates and frees about 17 blocks on its loop thread
 * (the call, its ctx, message chunks, metadata entries, nghttp2's stream,
 * frames and header buffers). glibc serves most of them from its thread
 * cache, but not calloc'd blocks, not blocks over 1032 bytes (the call
 * struct), and not once 7 blocks of a size are outstanding, which is
 * every size when a connection has dozens of calls in flight: callgrind
 * counted 4,400 of a unary call's 28,300 server instructions in malloc and
 * free. This allocator keeps freed blocks of six size classes (64 .. 2048
 * bytes) on lists of the thread that frees them, when that thread has
 * asked for a cache (loop threads do, for the length of crpc_loop_run),
 * and hands them out again with a pop.
 *
 *
 * The depot: a message chunk is allocated by the thread that sends (a
 * handler's, a user's) and freed by the loop that wrote it, so a loop's
 * cache fills while the sender's stays empty, and glibc then gets a stream
 * of frees on one side and mallocs on the other. It trims the freed memory
 * and the sender pays a page fault per 4 KiB it allocates again (traced:
 * 15-33 faults of ~18 us each, on a VM, in the busy handler behind each
 * 0.4-0.7 ms cancel tail of cancel_bench -mode blocking). So a full cache
 * hands 16 blocks to a process-wide depot, and an empty one refills 16
 * from it, each batch under one lock; threads without a cache put and
 * take single blocks there.
 *
 * Rules:
 *   - A block from crpc_mem_alloc / _calloc / _realloc is freed with
 *     crpc_mem_free (never free()), on any thread. Blocks are 16-byte
 *     aligned, like malloc's.
 *   - Threads without a cache (handler threads, user threads) keep
 *     nothing themselves; they take from and give to the depot, else
 *     malloc. A block may move freely between threads.
 *   - A cache holds at most CRPC_MEM_CACHE_BYTES per size class, the depot
 *     CRPC_MEM_DEPOT_BYTES (kept for the life of the process: at most
 *     1.5 MiB over the six classes); blocks over 2048 bytes are never
 *     cached.
 *   - Under AddressSanitizer a cached block's payload is poisoned until it
 *     is handed out again, so a use after free is still reported.
 *   - Built with CRPC_MEM_NO_CACHE (the libFuzzer build, .bazelrc), no
 *     thread caches and no depot: libFuzzer's per-input leak check counts mallocs
 *     against frees, which blocks kept in a cache would unbalance.
 * Thread-safety: every function may be called from any thread; caches are
 * thread-local, and only a trade with the depot takes its lock.
 */
#ifndef CRPC_MEM_MEM_H
#define CRPC_MEM_MEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of free blocks one thread keeps per size class. */
#define CRPC_MEM_CACHE_BYTES (64 * 1024)

/* Bytes of free blocks the process-wide depot keeps per size class. */
#define CRPC_MEM_DEPOT_BYTES (4 * CRPC_MEM_CACHE_BYTES)

/* A block of at least n bytes (n == 0 gives a valid, unique block), or NULL
 * when memory is exhausted. */
void *crpc_mem_alloc(size_t n);

/* A zeroed block of count * size bytes, or NULL (also on overflow). */
void *crpc_mem_calloc(size_t count, size_t size);

/* Resizes p (NULL: allocates) to n bytes, keeping its contents up to the
 * smaller size; NULL when memory is exhausted (p is then untouched). */
void *crpc_mem_realloc(void *p, size_t n);

/* Frees p (NULL: no-op), into this thread's cache if it has one and the
 * class has room. */
void crpc_mem_free(void *p);

/* This thread keeps freed blocks from now on. Calls nest (a count); loop
 * threads call it at the start of crpc_loop_run. */
void crpc_mem_cache_begin(void);

/* Ends one crpc_mem_cache_begin; the last one frees every cached block, so
 * a thread that ends after it holds nothing. */
void crpc_mem_cache_end(void);

/* Blocks cached on this thread (tests). */
size_t crpc_mem_cached_blocks(void);

/* Blocks in the depot of the class that holds n-byte blocks (tests; a
 * snapshot). 0 for sizes never cached. */
size_t crpc_mem_depot_blocks(size_t n);

/* Frees every block the depot holds, to malloc (tests that count malloc's
 * calls; a process that wants the memory back). Any thread. */
void crpc_mem_depot_release(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_MEM_MEM_H */
