/*
 * rpc/ctx/ctx_block_hook.h - a per-thread hook that crpc's own waits on a
 * ctx call before they block (internal; for the server, which runs
 * blocking handlers on a loop thread lent to them: the hook hands the
 * loop to its standby at once, crpc_loop_outside_will_block).
 *
 * The ctx layer knows nothing of loops; whoever lends a thread installs
 * the hook around the work and removes it after.
 */
#ifndef CRPC_CTX_CTX_BLOCK_HOOK_H
#define CRPC_CTX_CTX_BLOCK_HOOK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Sets (fn) or clears (NULL) the calling thread's hook. crpc_ctx_wait,
 * crpc_ctx_wait_cond, crpc_ctx_sleep (with a duration) and
 * crpc_ctx_wait_fd call fn on this thread before they block, not when the
 * ctx is done already. fn must not block or wait on a ctx. */
void ctx_set_block_hook(void (*fn)(void));

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CTX_CTX_BLOCK_HOOK_H */
