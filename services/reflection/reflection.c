/*
 * services/reflection/reflection.c - server reflection, grpc.reflection.v1
 * and v1alpha (crpc/admin.h has the contract), as one async bidi reactor
 * registered under both paths.
 *
 * The two versions' messages are the same on the wire (same fields, same
 * numbers; only the package differs), so both paths decode and encode with
 * the v1 types. Both .proto files are still added to the descriptor set,
 * so each version is itself reflectable under its own name.
 *
 * Every callback of a stream runs on its call's loop thread, one at a
 * time, so a stream's state needs no lock. Flow control: a request is
 * answered only while crpc_server_call_can_send says yes; otherwise it
 * waits in a short queue for on_send_ready (a client that keeps asking
 * without reading is ended RESOURCE_EXHAUSTED rather than buffered
 * without bound).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crpc/admin.h"
#include "crpc/server_async.h"
#include "crpc/server_info.h"
#include "grpc/reflection/v1/reflection.crpc.h"
#include "grpc/reflection/v1alpha/reflection.crpc.h"
#include "services/reflection/reflection_index.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Request;
typedef Grpc__Reflection__V1__ServerReflectionResponse Response;

/* Requests held while the client does not read our answers. */
#define MAX_PENDING 64

typedef struct refl_service {
  crpc_server *server;
  pthread_mutex_t mu; /* guards built / idx until built is true */
  bool built;
  refl_index idx;
} refl_service;

typedef struct pending {
  uint8_t *data;
  size_t len;
  struct pending *next;
} pending;

typedef struct refl_stream {
  refl_service *svc;
  crpc_server_call *call;
  pending *head, *tail;
  size_t n_pending;
  bool half_closed, finished;
} refl_stream;

/* The index, built on first use; NULL if out of memory (the next request
 * tries again). */
static const refl_index *get_index(refl_service *svc) {
  pthread_mutex_lock(&svc->mu);
  if (!svc->built) svc->built = refl_index_build(&svc->idx, svc->server);
  bool ok = svc->built;
  pthread_mutex_unlock(&svc->mu);
  return ok ? &svc->idx : NULL;
}

static void finish(refl_stream *st, crpc_code code, const char *message) {
  if (st->finished) return;
  st->finished = true;
  crpc_server_call_finish(st->call, code, message);
}

/* ---- answers ------------------------------------------------------------ */

/* Appends file f and, depth first, everything it imports, each once. */
static void collect(const refl_index *idx, long f, bool *seen, size_t *order,
                    size_t *n) {
  if (f < 0 || seen[f]) return;
  seen[f] = true;
  order[(*n)++] = (size_t)f;
  const crpc_file_descriptor *fd = idx->files[f];
  for (size_t i = 0; i < fd->n_deps; i++) {
    /* By name: an import's pointer may be another file's static copy of
     * the one the server kept. */
    collect(idx, refl_find_file(idx, fd->deps[i]->name), seen, order, n);
  }
}

/* Fills resp with file f and its transitive imports. False if out of
 * memory; *owned gets what the caller frees after packing. */
static bool answer_files(const refl_index *idx, long f, Response *resp,
                         Grpc__Reflection__V1__FileDescriptorResponse *fdr,
                         void **owned) {
  bool *seen = calloc(idx->n_files + 1, sizeof(*seen));
  size_t *order = calloc(idx->n_files + 1, sizeof(*order));
  ProtobufCBinaryData *bins = calloc(idx->n_files + 1, sizeof(*bins));
  if (seen == NULL || order == NULL || bins == NULL) {
    free(seen);
    free(order);
    free(bins);
    return false;
  }
  size_t n = 0;
  collect(idx, f, seen, order, &n);
  for (size_t i = 0; i < n; i++) {
    bins[i].data = (uint8_t *)idx->files[order[i]]->data;
    bins[i].len = idx->files[order[i]]->len;
  }
  free(seen);
  free(order);
  fdr->n_file_descriptor_proto = n;
  fdr->file_descriptor_proto = bins;
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = fdr;
  *owned = bins;
  return true;
}

static void answer_error(Response *resp,
                         Grpc__Reflection__V1__ErrorResponse *err,
                         crpc_code code, const char *message) {
  err->error_code = (int32_t)code;
  err->error_message = (char *)message; /* only read, by pack */
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = err;
}

/* All the storage one response points into, freed after packing. */
typedef struct answer {
  Response resp;
  Grpc__Reflection__V1__FileDescriptorResponse fdr;
  Grpc__Reflection__V1__ErrorResponse err;
  Grpc__Reflection__V1__ListServiceResponse list;
  Grpc__Reflection__V1__ExtensionNumberResponse nums;
  void *owned[2];
} answer;

/* Fills a->resp for req. False if out of memory. */
static bool answer_request(const refl_index *idx, Request *req, answer *a) {
  a->resp.valid_host = req->host;
  a->resp.original_request = req;
  long f = -1;
  const char *what = NULL, *name = NULL;
  switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      name = req->file_by_filename;
      f = refl_find_file(idx, name);
      what = "file not found";
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      name = req->file_containing_symbol;
      f = refl_find_symbol(idx, name);
      what = "symbol not found";
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
      const Grpc__Reflection__V1__ExtensionRequest *e =
          req->file_containing_extension;
      name = e != NULL ? e->containing_type : "";
      f = e != NULL ? refl_find_extension(idx, e->containing_type,
                                          e->extension_number)
                    : -1;
      what = "extension not found";
      break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
      name = req->all_extension_numbers_of_type;
      if (!refl_is_message(idx, name)) {
        what = "type not found";
        break;
      }
      const char *base = name[0] == '.' ? name + 1 : name;
      int32_t *nums = calloc(idx->n_exts + 1, sizeof(*nums));
      if (nums == NULL) return false;
      for (size_t i = 0; i < idx->n_exts; i++) {
        if (strcmp(idx->exts[i].extendee, base) == 0) {
          nums[a->nums.n_extension_number++] = idx->exts[i].number;
        }
      }
      a->nums.base_type_name = (char *)base;
      a->nums.extension_number = nums;
      a->owned[0] = nums;
      a->resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      a->resp.all_extension_numbers_response = &a->nums;
      return true;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
      size_t n = idx->n_services;
      Grpc__Reflection__V1__ServiceResponse *items =
          calloc(n + 1, sizeof(*items));
      Grpc__Reflection__V1__ServiceResponse **ptrs =
          calloc(n + 1, sizeof(*ptrs));
      if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        return false;
      }
      for (size_t i = 0; i < n; i++) {
        grpc__reflection__v1__service_response__init(&items[i]);
        items[i].name = idx->services[i];
        ptrs[i] = &items[i];
      }
      a->list.n_service = n;
      a->list.service = ptrs;
      a->owned[0] = items;
      a->owned[1] = ptrs;
      a->resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
      a->resp.list_services_response = &a->list;
      return true;
    }
    default:
      answer_error(&a->resp, &a->err, CRPC_INVALID_ARGUMENT,
                   "no request in ServerReflectionRequest");
      return true;
  }
  if (f >= 0) return answer_files(idx, f, &a->resp, &a->fdr, &a->owned[0]);
  /* "symbol not found: NAME"; the name is the client's, bounded by the
   * message size limit. */
  size_t len = strlen(what) + 2 + strlen(name) + 1;
  char *msg = malloc(len);
  if (msg == NULL) return false;
  strcpy(msg, what);
  strcat(msg, ": ");
  strcat(msg, name);
  a->owned[1] = msg;
  answer_error(&a->resp, &a->err, CRPC_NOT_FOUND, msg);
  return true;
}

/* Decodes one request, answers it. */
static void handle(refl_stream *st, const uint8_t *data, size_t len) {
  Request *req = grpc__reflection__v1__server_reflection_request__unpack(
      NULL, len, data);
  if (req == NULL) {
    finish(st, CRPC_INVALID_ARGUMENT, "cannot parse ServerReflectionRequest");
    return;
  }
  const refl_index *idx = get_index(st->svc);
  answer a;
  memset(&a, 0, sizeof(a));
  grpc__reflection__v1__server_reflection_response__init(&a.resp);
  grpc__reflection__v1__file_descriptor_response__init(&a.fdr);
  grpc__reflection__v1__error_response__init(&a.err);
  grpc__reflection__v1__list_service_response__init(&a.list);
  grpc__reflection__v1__extension_number_response__init(&a.nums);
  if (idx == NULL || !answer_request(idx, req, &a)) {
    finish(st, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    size_t n = grpc__reflection__v1__server_reflection_response__get_packed_size(&a.resp);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
      finish(st, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
      grpc__reflection__v1__server_reflection_response__pack(&a.resp, buf);
      /* An error means the ctx is done: on_cancel is on its way. */
      (void)crpc_server_call_send_async(st->call, buf, n, 0);
      free(buf);
    }
  }
  free(a.owned[0]);
  free(a.owned[1]);
  grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
}

/* Answers queued requests while the client reads; ends the stream once the
 * client has half-closed and everything is answered. */
static void drain(refl_stream *st) {
  while (st->head != NULL && !st->finished &&
         crpc_server_call_can_send(st->call)) {
    pending *p = st->head;
    st->head = p->next;
    if (st->head == NULL) st->tail = NULL;
    st->n_pending--;
    handle(st, p->data, p->len);
    free(p->data);
    free(p);
  }
  if (st->half_closed && st->head == NULL) finish(st, CRPC_OK, NULL);
}

/* ---- the reactor -------------------------------------------------------- */

static void *on_start(crpc_server_call *call, const crpc_ctx *ctx,
                      void *user_data) {
  (void)ctx;
  refl_stream *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  st->svc = user_data;
  st->call = call;
  return st;
}

static void on_message(crpc_server_call *call, const crpc_message *msg,
                       void *state) {
  (void)call;
  refl_stream *st = state;
  if (st == NULL || st->finished) return;
  if (msg->end) {
    st->half_closed = true;
    drain(st);
    return;
  }
  if (st->head == NULL && crpc_server_call_can_send(st->call)) {
    handle(st, msg->data, msg->len);
    return;
  }
  if (st->n_pending >= MAX_PENDING) {
    finish(st, CRPC_RESOURCE_EXHAUSTED,
           "too many reflection requests while not reading the answers");
    return;
  }
  pending *p = calloc(1, sizeof(*p));
  uint8_t *copy = malloc(msg->len ? msg->len : 1);
  if (p == NULL || copy == NULL) {
    free(p);
    free(copy);
    finish(st, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (msg->len > 0) memcpy(copy, msg->data, msg->len);
  p->data = copy;
  p->len = msg->len;
  if (st->tail != NULL) {
    st->tail->next = p;
  } else {
    st->head = p;
  }
  st->tail = p;
  st->n_pending++;
}

static void on_send_ready(crpc_server_call *call, void *state) {
  (void)call;
  if (state != NULL) drain(state);
}

static void on_cancel(crpc_server_call *call, const crpc_cause *cause,
                      void *state) {
  (void)call;
  if (state != NULL) finish(state, cause->code, NULL);
}

static void on_done(crpc_server_call *call, void *state) {
  (void)call;
  refl_stream *st = state;
  if (st == NULL) return;
  while (st->head != NULL) {
    pending *p = st->head;
    st->head = p->next;
    free(p->data);
    free(p);
  }
  free(st);
}

static const crpc_server_reactor reactor = {
    .on_start = on_start,
    .on_message = on_message,
    .on_send_ready = on_send_ready,
    .on_cancel = on_cancel,
    .on_done = on_done,
};

/* ---- registration ------------------------------------------------------- */

static void on_server_event(crpc_server *server, crpc_server_event event,
                            void *user_data) {
  (void)server;
  refl_service *svc = user_data;
  if (event != CRPC_SERVER_FREED) return;
  if (svc->built) refl_index_free(&svc->idx);
  pthread_mutex_destroy(&svc->mu);
  free(svc);
}

crpc_code crpc_reflection_service_add(crpc_server *server) {
  refl_service *svc = calloc(1, sizeof(*svc));
  if (svc == NULL) return CRPC_RESOURCE_EXHAUSTED;
  svc->server = server;
  pthread_mutex_init(&svc->mu, NULL);
  /* The hook first: from here on the server frees svc, even if a
   * registration below fails after another succeeded. */
  crpc_code code = crpc_server_add_hook(server, on_server_event, svc);
  if (code != CRPC_OK) {
    pthread_mutex_destroy(&svc->mu);
    free(svc);
    return code;
  }
  static const char *const paths[] = {
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  };
  for (size_t i = 0; code == CRPC_OK && i < 2; i++) {
    code = crpc_server_add_async_method(server, paths[i], CRPC_BIDI_STREAMING,
                                        &reactor, svc);
  }
  if (code == CRPC_OK) {
    code = crpc_server_add_file_descriptor(
        server, &crpc_fd_grpc_2freflection_2fv1_2freflection_2eproto);
  }
  if (code == CRPC_OK) {
    code = crpc_server_add_file_descriptor(
        server, &crpc_fd_grpc_2freflection_2fv1alpha_2freflection_2eproto);
  }
  return code;
}
