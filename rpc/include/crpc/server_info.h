/*
 * crpc/server_info.h - what a server knows about itself, for services that
 * describe or watch it (health, reflection; crpc/admin.h): the methods it
 * serves, the .proto descriptors behind them, and hooks at the start of
 * shutdown and at free.
 *
 * Descriptors: protoc-gen-crpc embeds each .proto file's serialized
 * FileDescriptorProto in the generated .crpc.c as a crpc_file_descriptor,
 * and the generated <service>_register_handlers / _register_async_handlers
 * add it (with its imports) to the server, so a registered generated
 * service is reflectable with no runtime .proto parsing.
 *
 * Threads: everything that adds (descriptors, hooks) is set-up, called by
 * one thread before crpc_server_start, like crpc_server_add_method. After
 * start the lists no longer change, so the readers below may be called
 * from any thread (handlers included) without a lock.
 */
#ifndef CRPC_SERVER_INFO_H
#define CRPC_SERVER_INFO_H

#include <stddef.h>

#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One .proto file as protoc saw it. Generated code defines these as
 * constants with static storage; crpc never copies or frees them. */
typedef struct crpc_file_descriptor {
  const char *name; /* as imported: "grpc/health/v1/health.proto" */
  const unsigned char *data; /* serialized google.protobuf.FileDescriptorProto
                                (source_code_info stripped) */
  size_t len;
  /* The files it imports, in import order (n_deps may be 0, deps NULL). */
  const struct crpc_file_descriptor *const *deps;
  size_t n_deps;
} crpc_file_descriptor;

/* Adds fd and, recursively, its imports to the server's descriptor set
 * (a file already there by name is skipped, so adding one twice is fine).
 * Before start. fd must outlive the server (generated ones are static).
 * CRPC_OK, INVALID_ARGUMENT (NULL or nameless fd), FAILED_PRECONDITION
 * (after start) or RESOURCE_EXHAUSTED (out of memory). */
crpc_code crpc_server_add_file_descriptor(crpc_server *server,
                                          const crpc_file_descriptor *fd);

/* The descriptor set: count and the i-th file (0 <= i < count, else NULL),
 * in the order added (a file's imports come before the file). */
size_t crpc_server_file_descriptor_count(const crpc_server *server);
const crpc_file_descriptor *crpc_server_file_descriptor_at(
    const crpc_server *server, size_t i);

/* The registered methods: count and the i-th path, "/pkg.Service/Method"
 * (owned by the server; NULL past the end), in registration order. */
size_t crpc_server_method_count(const crpc_server *server);
const char *crpc_server_method_path(const crpc_server *server, size_t i);

typedef enum crpc_server_event {
  /* crpc_server_shutdown (or free) has begun: called on that thread, once,
   * before the listeners close and the GOAWAYs go out, while calls still
   * run. Health services turn NOT_SERVING here. The hook must not block
   * for long, nor call crpc_server_shutdown or crpc_server_free. */
  CRPC_SERVER_SHUTDOWN_STARTED = 1,
  /* crpc_server_free: every loop and handler thread has ended and no
   * call is left; free what the hook's user_data owns. The server may not
   * be used any more. */
  CRPC_SERVER_FREED = 2
} crpc_server_event;

typedef void (*crpc_server_hook_fn)(crpc_server *server,
                                    crpc_server_event event, void *user_data);

/* Calls fn(server, event, user_data) for every event above: SHUTDOWN_STARTED
 * in the order hooks were added, FREED in reverse order (last added, first
 * freed). Before start. CRPC_OK, INVALID_ARGUMENT (fn NULL),
 * FAILED_PRECONDITION (after start) or RESOURCE_EXHAUSTED. */
crpc_code crpc_server_add_hook(crpc_server *server, crpc_server_hook_fn fn,
                               void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_SERVER_INFO_H */
