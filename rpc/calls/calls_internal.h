/*
 * rpc/calls/calls_internal.h - what the server's and the channel's
 * live-call registries (crpc/calls.h) share (internal): asking every loop
 * a question on its own thread and collecting the answers.
 *
 * A registry lives in the loops: each loop thread keeps a list of its
 * calls that no other thread touches. To read it, a calls_req goes to
 * every loop as a posted closure; on the loop, the side's visit function
 * copies its calls in (calls_req_add) or looks for the one to cancel
 * (calls_req_set_code); when the last loop has answered, the request is
 * complete: a blocking asker wakes, or the async callback runs there.
 *
 * Lifetime: refcounted. The asker holds one reference (a blocking one
 * until it has read the answer or given up; an async one only while
 * posting) and each posted closure holds one, so an asker whose ctx ended
 * can go while a wedged loop still owes its answer.
 */
#ifndef CRPC_CALLS_CALLS_INTERNAL_H
#define CRPC_CALLS_CALLS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/calls.h"
#include "rpc/loop/loop.h"

typedef enum calls_op { CALLS_LIST, CALLS_CANCEL } calls_op;

typedef struct calls_req calls_req;

/* Runs on a loop thread for each loop asked: arg is what calls_req_post
 * was given for that loop. */
typedef void (*calls_visit_fn)(calls_req *req, void *arg);

/* Runs once every loop has answered (or could not be asked), after the
 * async callback: the side gives back what kept its loops running. */
typedef void (*calls_release_fn)(void *owner);

/* One snapshot entry; the strings are offsets into the request's pool
 * until calls_req_take packs them. */
typedef struct calls_entry {
  crpc_call_info info;
  size_t method_off, peer_off;
} calls_entry;

typedef struct calls_visit {
  calls_req *req;
  void *arg;
} calls_visit;

struct calls_req {
  atomic_int refs;
  calls_op op;
  calls_visit_fn visit;
  /* CALLS_CANCEL: the call to end and why (the full cause message). */
  uint64_t id;
  char message[CRPC_CAUSE_MESSAGE_MAX];
  /* Async: the callback for op (NULL: a blocking asker waits). */
  crpc_calls_fn list_done;
  crpc_call_cancel_fn cancel_done;
  void *user_data;
  calls_release_fn release;
  void *owner;

  pthread_mutex_t mu; /* everything below */
  pthread_cond_t cond;
  int pending; /* loops that have not answered */
  /* LIST: OK, or RESOURCE_EXHAUSTED once something could not be kept.
   * CANCEL: NOT_FOUND until the loop holding the call sets it. */
  crpc_code code;
  calls_entry *entries;
  size_t n, cap;
  char *pool;
  size_t pool_len, pool_cap;

  int n_visits;
  calls_visit visits[]; /* one per loop */
};

/* A request for n_loops loops (refs 1: the asker's), or NULL if out of
 * memory. reason (CANCEL) becomes CRPC_CALL_CANCEL_PREFIX + reason. */
calls_req *calls_req_new(calls_op op, calls_visit_fn visit, int n_loops,
                         uint64_t id, const char *reason);

/* Drops a reference; the last frees the request. Any thread. */
void calls_req_unref(calls_req *req);

/* Posts visit(req, visits[i].arg) to loop_of(visits[i].arg) for each of
 * the n_loops loops (the side has set every visits[i].arg);
 * release(owner) (may be NULL) runs once all have answered. A loop that
 * cannot be posted to (out of memory) counts as answered with
 * RESOURCE_EXHAUSTED. With no loops the request completes here. Any
 * thread; the asker keeps its reference. */
void calls_req_post(calls_req *req, crpc_loop *(*loop_of)(void *arg),
                    calls_release_fn release, void *owner);

/* Blocking asker: waits until every loop has answered or ctx is done.
 * CRPC_OK or the ctx's code. Not from one of the loops asked. */
crpc_code calls_req_wait(calls_req *req, const crpc_ctx *ctx);

/* After a successful wait: the answer, as crpc_server_calls returns it
 * (LIST: *calls and *count filled; CANCEL: pass NULLs). */
crpc_code calls_req_take(calls_req *req, crpc_call_info **calls,
                         size_t *count);

/* From a visit: adds a copy of info (its strings copied into the
 * request). Out of memory marks the answer RESOURCE_EXHAUSTED. */
void calls_req_add(calls_req *req, const crpc_call_info *info);

/* From a visit (CANCEL): the loop holding the call sets the outcome. */
void calls_req_set_code(calls_req *req, crpc_code code);

/* Aborts with a message naming fn when ctx is NULL (as crpc_call_start
 * does: a wait nobody bounds is a bug at the call site). */
void calls_require_ctx(const crpc_ctx *ctx, const char *fn);

/* The state a call is in, from what both sides know (crpc/calls.h has the
 * order): status decided, ctx done, the client half-closed, any message
 * moved either way. */
crpc_call_state calls_state(bool decided, bool ctx_done, bool half_closed,
                            bool moved);

#endif /* CRPC_CALLS_CALLS_INTERNAL_H */
