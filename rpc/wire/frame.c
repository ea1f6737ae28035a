#include "rpc/wire/frame.h"

#include <stdlib.h>
#include <string.h>

/* The first body allocation is at most this big; it then doubles as bytes
 * arrive, so a peer must actually send data to make us hold memory. */
#define FIRST_BODY_CAP ((size_t)16 * 1024)

crpc_code crpc_wire_frame_encode_prefix(uint8_t out[CRPC_WIRE_FRAME_PREFIX_LEN],
                                        bool compressed, size_t len) {
  if ((uint64_t)len > UINT32_MAX) return CRPC_RESOURCE_EXHAUSTED;
  uint32_t n = (uint32_t)len;
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(n >> 24);
  out[2] = (uint8_t)(n >> 16);
  out[3] = (uint8_t)(n >> 8);
  out[4] = (uint8_t)n;
  return CRPC_OK;
}

crpc_code crpc_wire_frame_encode(const void *msg, size_t len, bool compressed,
                                 uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  uint8_t prefix[CRPC_WIRE_FRAME_PREFIX_LEN];
  if (crpc_wire_frame_encode_prefix(prefix, compressed, len) != CRPC_OK) {
    return CRPC_RESOURCE_EXHAUSTED;
  }
  uint8_t *buf = malloc(len + CRPC_WIRE_FRAME_PREFIX_LEN);
  if (buf == NULL) return CRPC_RESOURCE_EXHAUSTED;
  memcpy(buf, prefix, sizeof(prefix));
  if (len > 0) memcpy(buf + CRPC_WIRE_FRAME_PREFIX_LEN, msg, len);
  *out = buf;
  *out_len = len + CRPC_WIRE_FRAME_PREFIX_LEN;
  return CRPC_OK;
}

void crpc_wire_frame_decoder_init(crpc_wire_frame_decoder *d,
                                  size_t max_message) {
  memset(d, 0, sizeof(*d));
  d->max_message = max_message;
  d->error.code = CRPC_OK;
}

void crpc_wire_frame_decoder_destroy(crpc_wire_frame_decoder *d) {
  if (d == NULL) return;
  free(d->body);
  d->body = NULL;
  d->body_cap = 0;
  d->body_have = 0;
}

const crpc_wire_error *crpc_wire_frame_decoder_error(
    const crpc_wire_frame_decoder *d) {
  return &d->error;
}

static int fail(crpc_wire_frame_decoder *d) {
  free(d->body);
  d->body = NULL;
  d->body_cap = 0;
  d->body_have = 0;
  return CRPC_WIRE_FRAME_ERROR;
}

/* Hands the finished body to the caller and resets for the next prefix. */
static int deliver(crpc_wire_frame_decoder *d, crpc_wire_message *msg) {
  uint8_t *data = d->body;
  if (data == NULL) {
    /* Zero-length message: still give the caller a real pointer so that
     * "data != NULL" always means "a message". */
    data = malloc(1);
    if (data == NULL) {
      crpc_wire_error_set(&d->error, CRPC_RESOURCE_EXHAUSTED,
                          "out of memory for an empty message");
      return fail(d);
    }
  }
  msg->data = data;
  msg->len = d->body_want;
  msg->compressed = d->prefix[0] == 1;
  d->body = NULL;
  d->body_cap = 0;
  d->body_have = 0;
  d->body_want = 0;
  d->prefix_have = 0;
  return CRPC_WIRE_FRAME_MESSAGE;
}

/* Makes room for `more` bytes after body_have; never beyond body_want. */
static bool reserve(crpc_wire_frame_decoder *d, size_t more) {
  size_t need = d->body_have + more;
  if (need <= d->body_cap) return true;
  size_t cap = d->body_cap == 0 ? FIRST_BODY_CAP : d->body_cap * 2;
  if (cap < need) cap = need;
  if (cap > d->body_want) cap = d->body_want;
  uint8_t *p = realloc(d->body, cap);
  if (p == NULL) return false;
  d->body = p;
  d->body_cap = cap;
  return true;
}

int crpc_wire_frame_decoder_feed(crpc_wire_frame_decoder *d,
                                 const uint8_t *data, size_t len,
                                 size_t *consumed, crpc_wire_message *msg) {
  size_t used = 0;
  *consumed = 0;
  if (d->error.code != CRPC_OK) return CRPC_WIRE_FRAME_ERROR;

  if (d->prefix_have < CRPC_WIRE_FRAME_PREFIX_LEN) {
    /* Check the flag as soon as it arrives: a garbage stream should fail
     * on its first byte, not after four more. */
    if (d->prefix_have == 0 && len > 0 && data[0] > 1) {
      *consumed = 1;
      crpc_wire_error_set(&d->error, CRPC_INTERNAL,
                          "invalid message compressed flag 0x%02x "
                          "(must be 0 or 1)",
                          data[0]);
      return fail(d);
    }
    size_t n = CRPC_WIRE_FRAME_PREFIX_LEN - d->prefix_have;
    if (n > len) n = len;
    if (n > 0) memcpy(d->prefix + d->prefix_have, data, n);
    d->prefix_have += n;
    used += n;
    if (d->prefix_have < CRPC_WIRE_FRAME_PREFIX_LEN) {
      *consumed = used;
      return CRPC_WIRE_FRAME_NEED_MORE;
    }
    uint32_t want = (uint32_t)d->prefix[1] << 24 |
                    (uint32_t)d->prefix[2] << 16 | (uint32_t)d->prefix[3] << 8 |
                    (uint32_t)d->prefix[4];
    if ((uint64_t)want > (uint64_t)d->max_message) {
      *consumed = used;
      crpc_wire_error_set(&d->error, CRPC_RESOURCE_EXHAUSTED,
                          "received message larger than max (%lu vs. %lu)",
                          (unsigned long)want, (unsigned long)d->max_message);
      return fail(d);
    }
    d->body_want = want;
    d->body_have = 0;
  }

  size_t n = d->body_want - d->body_have;
  if (n > len - used) n = len - used;
  if (n > 0) {
    if (!reserve(d, n)) {
      *consumed = used;
      crpc_wire_error_set(&d->error, CRPC_RESOURCE_EXHAUSTED,
                          "out of memory assembling a %lu-byte message",
                          (unsigned long)d->body_want);
      return fail(d);
    }
    memcpy(d->body + d->body_have, data + used, n);
    d->body_have += n;
    used += n;
  }
  *consumed = used;
  if (d->body_have < d->body_want) return CRPC_WIRE_FRAME_NEED_MORE;
  return deliver(d, msg);
}

crpc_code crpc_wire_frame_decoder_finish(crpc_wire_frame_decoder *d) {
  if (d->error.code != CRPC_OK) return d->error.code;
  if (d->prefix_have == 0) return CRPC_OK;
  if (d->prefix_have < CRPC_WIRE_FRAME_PREFIX_LEN) {
    crpc_wire_error_set(&d->error, CRPC_INTERNAL,
                        "stream ended inside a message prefix (%lu of 5 bytes)",
                        (unsigned long)d->prefix_have);
  } else {
    crpc_wire_error_set(&d->error, CRPC_INTERNAL,
                        "stream ended inside a message (%lu of %lu bytes)",
                        (unsigned long)d->body_have,
                        (unsigned long)d->body_want);
  }
  fail(d);
  return CRPC_INTERNAL;
}

size_t crpc_wire_frame_decoder_buffered(const crpc_wire_frame_decoder *d) {
  return d->body_cap;
}
