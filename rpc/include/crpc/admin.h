/*
 * crpc/admin.h - the services an operator's tools expect on every gRPC
 * server: grpc.health.v1.Health (Kubernetes probes, grpc_health_probe,
 * load balancers), server reflection, grpc.reflection.v1 and v1alpha
 * (grpcurl, grpcui, Postman), grpc.channelz.v1.Channelz (channelz
 * dashboards, grpcdebug: every server, channel and connection of the
 * process with its counters), and crpc's own crpc.admin.v1.Admin (the
 * running calls, crpc/calls.h). Link //services:admin.
 *
 *   crpc_health *health = NULL;
 *   crpc_server_add_admin_services(server, &health);   before start
 *   ...
 *   crpc_health_set_status(health, "pkg.Svc", CRPC_HEALTH_NOT_SERVING);
 *
 * All of them run as async methods (crpc/server_async.h) on the loop
 * threads: an idle Watch or reflection stream costs no thread. Like every
 * async method they run without the server's interceptor chain, so an
 * auth interceptor does not guard them; serve them on a listener only
 * trusted peers reach if that matters.
 *
 * Lifetime: everything added here belongs to the server and is freed by
 * crpc_server_free (crpc/server_info.h's FREED hook); a crpc_health handle
 * is valid until then.
 */
#ifndef CRPC_ADMIN_H
#define CRPC_ADMIN_H

#include "crpc/channel.h"
#include "crpc/server.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_health crpc_health;

/* ---- the one switch ----------------------------------------------------- */

/* Adds every admin service crpc has: health (as
 * crpc_health_service_add), reflection v1 + v1alpha (as
 * crpc_reflection_service_add), channelz (as crpc_channelz_service_add)
 * and crpc.admin.v1.Admin (as crpc_admin_service_add); services added
 * later join here, so callers of this function get them without a
 * change. Before
 * crpc_server_start; register your own services before or after, in any
 * order (reflection reads the server's lists when first asked).
 * *health (if not NULL) gets the health handle, NULL on failure. CRPC_OK,
 * or the first error (ALREADY_EXISTS if one of these services is already
 * registered, FAILED_PRECONDITION after start, RESOURCE_EXHAUSTED). */
crpc_code crpc_server_add_admin_services(crpc_server *server,
                                         crpc_health **health);

/* ---- grpc.health.v1.Health ---------------------------------------------- */

/* The wire values of grpc.health.v1.HealthCheckResponse.ServingStatus. */
typedef enum crpc_health_status {
  CRPC_HEALTH_UNKNOWN = 0,
  CRPC_HEALTH_SERVING = 1,
  CRPC_HEALTH_NOT_SERVING = 2,
  CRPC_HEALTH_SERVICE_UNKNOWN = 3 /* Watch only: no status set */
} crpc_health_status;

/* Registers Check and Watch and returns the handle that sets statuses
 * (owned by the server), or NULL (*code, if not NULL, says why, as
 * crpc_server_add_admin_services). Before start.
 *
 * Behaviour, as gRPC's own health services:
 *   - "" (the whole server) starts SERVING; any other name is unknown
 *     until crpc_health_set_status names it.
 *   - Check: the status, or NOT_FOUND for an unknown service.
 *   - Watch: the current status at once (SERVICE_UNKNOWN if unknown; the
 *     call stays open), then every change, the latest one if several came
 *     while the client was not reading. It ends when the client cancels,
 *     its deadline passes, or the server shuts down.
 *   - When crpc_server_shutdown begins, every service (and "") turns
 *     NOT_SERVING and later sets are ignored; each Watch gets that status
 *     and then ends UNAVAILABLE ("server shutting down"), so watchers do
 *     not hold the shutdown's grace period. */
crpc_health *crpc_health_service_add(crpc_server *server, crpc_code *code);

/* Sets `service`'s status ("" = the whole server; NULL is ""); status must
 * be SERVING or NOT_SERVING (else INVALID_ARGUMENT, nothing changes).
 * Watchers of that name get the new status if it differs. Any thread, any
 * time (from handlers too; it never blocks on the network). CRPC_OK,
 * FAILED_PRECONDITION (shutdown has begun: the set is ignored, as gRPC
 * does), RESOURCE_EXHAUSTED (out of memory). */
crpc_code crpc_health_set_status(crpc_health *health, const char *service,
                                 crpc_health_status status);

/* Forgets `service` (it becomes unknown again: Check NOT_FOUND, watchers
 * get SERVICE_UNKNOWN). Any thread. CRPC_OK or NOT_FOUND. */
crpc_code crpc_health_clear_status(crpc_health *health, const char *service);

/* `service`'s current status, or CRPC_HEALTH_SERVICE_UNKNOWN. Any thread. */
crpc_health_status crpc_health_get_status(crpc_health *health,
                                          const char *service);

/* Every service NOT_SERVING now and from now on (later sets are ignored):
 * what shutdown does, for callers that drain before they shut down (e.g.
 * a Kubernetes preStop hook: drain, sleep, then crpc_server_shutdown).
 * Watches stay open. Any thread; idempotent. */
void crpc_health_drain(crpc_health *health);

/* ---- server reflection --------------------------------------------------- */

/* Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection (ServerReflectionInfo, a bidi
 * stream: one response per request, in order). Before start. CRPC_OK or
 * as crpc_server_add_admin_services.
 *
 * It answers from the server's own lists (crpc/server_info.h), read when
 * the first request arrives: list_services names every service with a
 * registered method; file_by_filename, file_containing_symbol (a package,
 * message, enum, enum value, service, method, field or extension name)
 * and file_containing_extension return the file and its transitive
 * imports (each file once per response); all_extension_numbers
 * _of_type lists extension numbers of a known message. Descriptors come
 * from generated code (protoc-gen-crpc); a service registered by hand has
 * a name in list_services but no file. Unknown names get an error_response
 * NOT_FOUND and the stream goes on; a request that does not parse ends
 * the stream INVALID_ARGUMENT. */
crpc_code crpc_reflection_service_add(crpc_server *server);

/* ---- grpc.channelz.v1.Channelz --------------------------------------------- */

/* Registers grpc.channelz.v1.Channelz (gRPC's channelz.proto, with its
 * descriptor for reflection). Before start, from the thread setting the
 * server up. *code (if not NULL) is CRPC_OK or the error, as
 * crpc_server_add_admin_services says. Returns this server's channelz id
 * (crpc_server_channelz_id; 0 on error). The service keeps no state of
 * its own (nothing to free): it reads the runtime's registry, which every
 * server and channel joins when created and leaves when freed, whether
 * channelz is served or not. Its methods take the registry's mutex and,
 * for a channel's state, the channel's own, briefly; none waits.
 *
 * It answers for the whole process, as gRPC's does: every crpc_server
 * and crpc_channel alive in it, not only this server. Ids are one
 * process-wide sequence (1, 2, ...) shared by servers, channels,
 * subchannels and sockets, never reused. What is there:
 *   - Server: calls started (a request stream opened), succeeded (the
 *     trailers sent said grpc-status 0), failed (any other end: an error
 *     status, a reset, the connection lost), last call started; its
 *     listen sockets (until they close at shutdown).
 *   - Server socket (an accepted connection, from accept to close):
 *     streams started / succeeded (this end sent END_STREAM) / failed,
 *     messages sent (handed to the socket whole) and received (decoded),
 *     keepalive PINGs sent, last remote stream / message sent / message
 *     received times, the connection flow-control windows (local: what
 *     the peer lets this end send; remote: what this end lets the peer
 *     send), local and remote addresses, and with TLS the cipher suite's
 *     standard name and both certificates (DER).
 *   - Channel (crpc_channel, a top channel): its target, state
 *     (crpc_channel_get_state), calls started (taken up by the channel's
 *     loop, right after crpc_call_start), succeeded (the server said OK),
 *     failed, last call started; its subchannels. A blocking
 *     crpc_call_start that fails before a connection is up is not
 *     counted.
 *   - Subchannel: one per address with round robin and least request, one
 *     for the whole target with pick first; its address, state, the call
 *     attempts its connections carried, and its open connections as
 *     sockets (client side: a stream succeeds when the server's END_STREAM
 *     came; last local stream is when its call started).
 * Unknown ids (or an id of another kind) end NOT_FOUND; a negative
 * max_results INVALID_ARGUMENT. Pages follow gRPC: results with id >=
 * start_*_id in ascending order, at most max_results (0: 100), and `end`
 * set when nothing lies past the last one. GetSocket reads a connection's
 * windows, addresses and TLS on its own loop thread and answers from
 * there (no thread is blocked; nothing on the hot path takes a lock: each
 * connection's loop counts in plain per-connection counters). Counters
 * are read one by one, so two may be a call apart. */
int64_t crpc_channelz_service_add(crpc_server *server, crpc_code *code);

/* A server's / channel's channelz id (what GetServer / GetChannel take),
 * or 0 if it has none (out of memory at creation). Any thread. */
int64_t crpc_server_channelz_id(const crpc_server *server);
int64_t crpc_channel_channelz_id(const crpc_channel *channel);

/* ---- crpc.admin.v1.Admin: running calls ---------------------------------- */

/* Registers crpc.admin.v1.Admin (services/admin/crpc/admin/v1/admin.proto)
 * and adds its descriptor, so reflection lists and describes it. Before
 * start. CRPC_OK or as crpc_server_add_admin_services.
 *   - ListCalls: every call the server is running, as crpc_server_calls
 *     sees them (id, method, peer, state, age, deadline left, messages and
 *     bytes each way, the cause once the ctx is done), sorted by id.
 *   - CancelCall {id, reason}: crpc_server_cancel_call; the call's ctx ends
 *     CANCELLED, origin admin, "cancelled by admin: <reason>", and its
 *     client gets that status. NOT_FOUND for an id no running call has,
 *     FAILED_PRECONDITION for a call already ending.
 * Both answer once every loop has (crpc_server_calls_async), without a
 * thread, and end with the client's cancel or deadline if that comes
 * first. Whoever reaches the port can end any call: with no interceptor
 * in front of async methods, expose it only to operators. */
crpc_code crpc_admin_service_add(crpc_server *server);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_ADMIN_H */
