/*
 * server_info.c - crpc/server_info.h: the server's descriptor set, its
 * method list for readers, and the event hooks that shutdown and free run.
 *
 * Everything here is written before crpc_server_start and only read after
 * it, so no lock is needed (the same rule as the method table).
 */
#include <stdlib.h>
#include <string.h>

#include "crpc/server_info.h"
#include "rpc/server/server_internal.h"

struct server_hook {
  crpc_server_hook_fn fn;
  void *user_data;
};

static bool has_fd(const crpc_server *s, const char *name) {
  for (size_t i = 0; i < s->n_fds; i++) {
    if (strcmp(s->fds[i]->name, name) == 0) return true;
  }
  return false;
}

/* Imports first, so a reader walking the set in order meets a file's
 * dependencies before the file. depth bounds a cycle protoc would never
 * produce but a hand-written descriptor could. */
static crpc_code add_fd(crpc_server *s, const crpc_file_descriptor *fd,
                        int depth) {
  if (fd == NULL || fd->name == NULL || depth > 64) {
    return CRPC_INVALID_ARGUMENT;
  }
  if (has_fd(s, fd->name)) return CRPC_OK;
  for (size_t i = 0; i < fd->n_deps; i++) {
    crpc_code code = add_fd(s, fd->deps[i], depth + 1);
    if (code != CRPC_OK) return code;
  }
  if (s->n_fds == s->cap_fds) {
    size_t cap = s->cap_fds ? 2 * s->cap_fds : 16;
    const crpc_file_descriptor **v = realloc(s->fds, cap * sizeof(*v));
    if (v == NULL) return CRPC_RESOURCE_EXHAUSTED;
    s->fds = v;
    s->cap_fds = cap;
  }
  s->fds[s->n_fds++] = fd;
  return CRPC_OK;
}

crpc_code crpc_server_add_file_descriptor(crpc_server *s,
                                          const crpc_file_descriptor *fd) {
  if (s->started) return CRPC_FAILED_PRECONDITION;
  return add_fd(s, fd, 0);
}

size_t crpc_server_file_descriptor_count(const crpc_server *s) {
  return s->n_fds;
}

const crpc_file_descriptor *crpc_server_file_descriptor_at(
    const crpc_server *s, size_t i) {
  return i < s->n_fds ? s->fds[i] : NULL;
}

size_t crpc_server_method_count(const crpc_server *s) { return s->n_methods; }

const char *crpc_server_method_path(const crpc_server *s, size_t i) {
  return i < s->n_methods ? s->methods[i].path : NULL;
}

crpc_code crpc_server_add_hook(crpc_server *s, crpc_server_hook_fn fn,
                               void *user_data) {
  if (fn == NULL) return CRPC_INVALID_ARGUMENT;
  if (s->started) return CRPC_FAILED_PRECONDITION;
  struct server_hook *v = realloc(s->hooks, (s->n_hooks + 1) * sizeof(*v));
  if (v == NULL) return CRPC_RESOURCE_EXHAUSTED;
  s->hooks = v;
  s->hooks[s->n_hooks++] = (struct server_hook){fn, user_data};
  return CRPC_OK;
}

void server_run_hooks(crpc_server *s, int event) {
  if (event == CRPC_SERVER_FREED) {
    for (size_t i = s->n_hooks; i-- > 0;) {
      s->hooks[i].fn(s, CRPC_SERVER_FREED, s->hooks[i].user_data);
    }
    return;
  }
  for (size_t i = 0; i < s->n_hooks; i++) {
    s->hooks[i].fn(s, (crpc_server_event)event, s->hooks[i].user_data);
  }
}

void server_info_free(crpc_server *s) {
  free(s->fds);
  free(s->hooks);
  s->fds = NULL;
  s->hooks = NULL;
  s->n_fds = s->n_hooks = 0;
}
