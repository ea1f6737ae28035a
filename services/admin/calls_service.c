/*
 * services/admin/calls_service.c - crpc.admin.v1.Admin: ListCalls and
 * CancelCall, the live-call registry (crpc/calls.h) over gRPC, on crpc's
 * async server API (crpc/admin.h has the contract).
 *
 * Both methods are unary, but the answer comes from every loop of the
 * server, so neither can reply inline on its own loop (waiting there for
 * the other loops, which may be waiting for this one, would deadlock).
 * Each is a reactor, registered by hand (generated async stubs make a
 * unary method an inline function): on_message asks the registry with
 * crpc_server_calls_async / crpc_server_cancel_call_async, and the answer,
 * on whichever loop answered last, finishes the call. No thread anywhere.
 *
 * The call may end first (client cancel, deadline, shutdown). Whoever
 * claims `finished` first, on_cancel or the answer, calls
 * crpc_server_call_finish; the other leaves the call alone. The per-call
 * state lives until both the reactor (on_done) and an outstanding answer
 * have let go of it.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "crpc/admin.h"
#include "crpc/admin/v1/admin.crpc.h"
#include "crpc/calls.h"
#include "crpc/server_async.h"
#include "crpc/server_info.h"

typedef struct admin_call {
  atomic_int refs;      /* the reactor's (until on_done), the answer's */
  atomic_bool finished; /* crpc_server_call_finish claimed */
  bool asked;           /* loop thread: the request came */
  crpc_server *server;
  crpc_server_call *call;
  uint64_t id; /* CancelCall */
} admin_call;

static void unref(admin_call *ac) {
  if (atomic_fetch_sub(&ac->refs, 1) == 1) free(ac);
}

/* True for the one caller who gets to finish the call. */
static bool claim(admin_call *ac) {
  return !atomic_exchange(&ac->finished, true);
}

/* ---- the reactor both methods share ------------------------------------- */

static void *admin_start(crpc_server_call *call, const crpc_ctx *ctx,
                         void *user_data) {
  (void)ctx;
  admin_call *ac = calloc(1, sizeof(*ac));
  if (ac == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  atomic_init(&ac->refs, 1);
  atomic_init(&ac->finished, false);
  ac->server = user_data;
  ac->call = call;
  return ac;
}

static void admin_cancel(crpc_server_call *call, const crpc_cause *cause,
                         void *state) {
  admin_call *ac = state;
  if (ac != NULL && claim(ac)) crpc_server_call_finish(call, cause->code, NULL);
}

static void admin_done(crpc_server_call *call, void *state) {
  (void)call;
  if (state != NULL) unref(state);
}

/* The one request message, unpacked, or NULL with the call finished (no
 * request, or one that does not parse). */
static ProtobufCMessage *take_request(admin_call *ac, const crpc_message *msg,
                                      const ProtobufCMessageDescriptor *d) {
  if (ac->asked) return NULL; /* the end after the request */
  ac->asked = true;
  ProtobufCMessage *req =
      msg->end ? NULL : protobuf_c_message_unpack(d, NULL, msg->len, msg->data);
  if (req == NULL && claim(ac)) {
    crpc_server_call_finish(ac->call,
                            msg->end ? CRPC_INTERNAL : CRPC_INVALID_ARGUMENT,
                            msg->end ? "unary call ended without a request"
                                     : "request does not parse");
  }
  return req;
}

/* ---- ListCalls ---------------------------------------------------------- */

static void fill_call(const crpc_call_info *in, Crpc__Admin__V1__Call *out,
                      Crpc__Admin__V1__Cause *cause) {
  crpc__admin__v1__call__init(out);
  out->id = in->id;
  /* protobuf-c's strings are char *; packing only reads them. */
  out->method = (char *)in->method;
  out->peer = (char *)in->peer;
  out->state = (Crpc__Admin__V1__CallState)in->state;
  out->age_ns = in->age_ns;
  out->has_deadline = in->deadline_left_ns != CRPC_NO_DEADLINE;
  out->deadline_left_ns = out->has_deadline ? in->deadline_left_ns : 0;
  out->messages_in = in->messages_in;
  out->bytes_in = in->bytes_in;
  out->messages_out = in->messages_out;
  out->bytes_out = in->bytes_out;
  if (!in->done) return;
  crpc__admin__v1__cause__init(cause);
  cause->code = (int32_t)in->cause.code;
  cause->code_name = (char *)crpc_code_name(in->cause.code);
  cause->origin = (char *)crpc_origin_name(in->cause.origin);
  cause->message = (char *)in->cause.message;
  out->cause = cause;
  if (in->cancel_event_ns != 0) {
    out->cancel_latency_ns = in->ctx_done_ns - in->cancel_event_ns;
  }
}

/* Every loop has answered: the response, then the status. On the last
 * loop's thread. */
static void list_answered(crpc_code code, crpc_call_info *calls, size_t count,
                          void *user_data) {
  admin_call *ac = user_data;
  if (claim(ac)) {
    Crpc__Admin__V1__Call *items = calloc(count ? count : 1, sizeof(*items));
    Crpc__Admin__V1__Cause *causes = calloc(count ? count : 1, sizeof(*causes));
    Crpc__Admin__V1__Call **ptrs = calloc(count ? count : 1, sizeof(*ptrs));
    if (code == CRPC_OK && (items == NULL || causes == NULL || ptrs == NULL)) {
      code = CRPC_RESOURCE_EXHAUSTED;
    }
    const char *why = code == CRPC_OK ? NULL : "the call registry did not answer";
    if (code == CRPC_OK) {
      Crpc__Admin__V1__ListCallsResponse resp =
          CRPC__ADMIN__V1__LIST_CALLS_RESPONSE__INIT;
      for (size_t i = 0; i < count; i++) {
        fill_call(&calls[i], &items[i], &causes[i]);
        ptrs[i] = &items[i];
      }
      resp.n_calls = count;
      resp.calls = ptrs;
      code = crpc_admin_v1_admin_list_calls_send_async(ac->call, &resp);
      if (code != CRPC_OK) why = "the list could not be sent";
    }
    crpc_server_call_finish(ac->call, code, why);
    free(items);
    free(causes);
    free(ptrs);
  }
  crpc_calls_free(calls);
  unref(ac);
}

static void list_message(crpc_server_call *call, const crpc_message *msg,
                         void *state) {
  (void)call;
  admin_call *ac = state;
  if (ac == NULL) return;
  ProtobufCMessage *req =
      take_request(ac, msg, &crpc__admin__v1__list_calls_request__descriptor);
  if (req == NULL) return;
  protobuf_c_message_free_unpacked(req, NULL);
  atomic_fetch_add(&ac->refs, 1); /* the answer's */
  crpc_server_calls_async(ac->server, list_answered, ac);
}

static const crpc_server_reactor list_reactor = {
    .on_start = admin_start,
    .on_message = list_message,
    .on_cancel = admin_cancel,
    .on_done = admin_done,
};

/* ---- CancelCall --------------------------------------------------------- */

static void cancel_answered(crpc_code code, void *user_data) {
  admin_call *ac = user_data;
  if (claim(ac)) {
    char why[96] = "";
    if (code == CRPC_OK) {
      Crpc__Admin__V1__CancelCallResponse resp =
          CRPC__ADMIN__V1__CANCEL_CALL_RESPONSE__INIT;
      code = crpc_admin_v1_admin_cancel_call_send_async(ac->call, &resp);
    } else if (code == CRPC_NOT_FOUND) {
      snprintf(why, sizeof(why), "no running call has id %llu",
               (unsigned long long)ac->id);
    } else if (code == CRPC_FAILED_PRECONDITION) {
      snprintf(why, sizeof(why), "call %llu is already ending",
               (unsigned long long)ac->id);
    }
    crpc_server_call_finish(ac->call, code, why[0] ? why : NULL);
  }
  unref(ac);
}

static void cancel_message(crpc_server_call *call, const crpc_message *msg,
                           void *state) {
  (void)call;
  admin_call *ac = state;
  if (ac == NULL) return;
  Crpc__Admin__V1__CancelCallRequest *req =
      (Crpc__Admin__V1__CancelCallRequest *)take_request(
          ac, msg, &crpc__admin__v1__cancel_call_request__descriptor);
  if (req == NULL) return;
  ac->id = req->id;
  atomic_fetch_add(&ac->refs, 1); /* the answer's; the reason is copied */
  crpc_server_cancel_call_async(ac->server, req->id, req->reason,
                                cancel_answered, ac);
  crpc__admin__v1__cancel_call_request__free_unpacked(req, NULL);
}

static const crpc_server_reactor cancel_reactor = {
    .on_start = admin_start,
    .on_message = cancel_message,
    .on_cancel = admin_cancel,
    .on_done = admin_done,
};

/* ---- registration ------------------------------------------------------- */

crpc_code crpc_admin_service_add(crpc_server *server) {
  crpc_code code = crpc_server_add_async_method(
      server, crpc_admin_v1_admin_list_calls_method.path, CRPC_UNARY,
      &list_reactor, server);
  if (code == CRPC_OK) {
    code = crpc_server_add_async_method(
        server, crpc_admin_v1_admin_cancel_call_method.path, CRPC_UNARY,
        &cancel_reactor, server);
  }
  if (code == CRPC_OK) {
    code = crpc_server_add_file_descriptor(
        server, &crpc_fd_crpc_2fadmin_2fv1_2fadmin_2eproto);
  }
  return code;
}
