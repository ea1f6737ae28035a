/*
 * rpc/testing/test_service.h - the test service "crpc.test.Test" on crpc's
 * server API; the same protocol as py_server.py (see README.md), so crpc
 * client tests and py_client.py can target either.
 *
 * Methods (messages are raw bytes; behaviour is steered by request
 * metadata, see README.md):
 *   Echo    unary             reply = request
 *   Count   server streaming  request "n size interval_us": n messages of
 *                             `size` bytes (message i filled with i & 0xff),
 *                             n == 0: until cancelled
 *   Collect client streaming  reply "count total_bytes"
 *   Chat    bidi              echoes each message as it arrives
 *   Hang    unary             never answers; returns when its ctx is done
 *   Report  unary             request = a tag; reply = the observation the
 *                             call with metadata x-tag=<tag> recorded
 *                             (waits up to 5 s for it)
 */
#ifndef CRPC_TESTING_TEST_SERVICE_H
#define CRPC_TESTING_TEST_SERVICE_H

#include <stdint.h>

#include "crpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_TEST_SERVICE "crpc.test.Test"

typedef struct crpc_test_service crpc_test_service;

/* A service with no observations yet; NULL if out of memory. */
crpc_test_service *crpc_test_service_new(void);

/* Registers the six methods on server (before crpc_server_start), with
 * blocking handlers (crpc/server.h). */
crpc_code crpc_test_service_register(crpc_test_service *svc,
                                     crpc_server *server);

/* The same methods with async handlers (crpc/server_async.h) running on
 * the loop thread, Report excepted (blocking: it waits). Same protocol and
 * observations; x-sleep-ms and Count's interval_us run on a thread of the
 * call's own (Chat and Hang ignore x-sleep-ms). */
crpc_code crpc_test_service_register_async(crpc_test_service *svc,
                                           crpc_server *server);

/* The observation recorded for tag ("method=Hang end=CANCELLED
 * origin=peer_reset sent=0 recv=1 timeout_ms=-1 late=0"), waiting up to
 * timeout_ns for it. malloc'd (caller frees) or NULL if none came. */
char *crpc_test_service_wait_report(crpc_test_service *svc, const char *tag,
                                    int64_t timeout_ns);

/* Number of handler invocations currently running. */
int crpc_test_service_running(crpc_test_service *svc);

/* Frees the service; the server using it must be freed first. */
void crpc_test_service_free(crpc_test_service *svc);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_TESTING_TEST_SERVICE_H */
