/*
 * stream.c - outgoing and incoming message queues of one stream.
 */
#include "rpc/h2/stream.h"

#include <stdlib.h>
#include <string.h>

#include "rpc/h2/limits.h"
#include "rpc/mem/mem.h"

crpc_h2_chunk *crpc_h2_chunk_frame(const void *msg, size_t len) {
  if (len > UINT32_MAX || len > SIZE_MAX - sizeof(crpc_h2_chunk) - 5) {
    return NULL;
  }
  crpc_h2_chunk *c =
      crpc_mem_alloc(sizeof(*c) + CRPC_WIRE_FRAME_PREFIX_LEN + len);
  if (c == NULL) return NULL;
  c->next = NULL;
  c->off = 0;
  c->refs = 1;
  c->bytes = c->data;
  c->buf = NULL;
  c->len = CRPC_WIRE_FRAME_PREFIX_LEN + len;
  crpc_wire_frame_encode_prefix(c->data, false, len);
  if (len > 0) memcpy(c->data + CRPC_WIRE_FRAME_PREFIX_LEN, msg, len);
  return c;
}

crpc_h2_chunk *crpc_h2_chunk_frame_encoded(crpc_wire_encoding e,
                                           const void *msg, size_t len,
                                           crpc_code *code) {
  *code = CRPC_RESOURCE_EXHAUSTED;
  if (e == CRPC_WIRE_ENCODING_IDENTITY) return crpc_h2_chunk_frame(msg, len);
  uint8_t *z;
  size_t zlen;
  *code = crpc_wire_compress(e, msg, len, &z, &zlen, NULL);
  if (*code != CRPC_OK) return NULL;
  crpc_h2_chunk *c = crpc_h2_chunk_frame(z, zlen);
  free(z);
  if (c == NULL) {
    *code = CRPC_RESOURCE_EXHAUSTED;
    return NULL;
  }
  crpc_wire_frame_encode_prefix(c->data, true, zlen);
  return c;
}

crpc_buf *crpc_buf_new(size_t len) {
  if (len > UINT32_MAX || len > SIZE_MAX - sizeof(crpc_buf) - 5) return NULL;
  crpc_buf *b = crpc_mem_alloc(sizeof(*b) + CRPC_WIRE_FRAME_PREFIX_LEN + len);
  if (b == NULL) return NULL;
  b->refs = 1;
  b->len = len;
  crpc_wire_frame_encode_prefix(b->frame, false, len);
  return b;
}

uint8_t *crpc_buf_data(crpc_buf *buf) {
  return buf->frame + CRPC_WIRE_FRAME_PREFIX_LEN;
}

size_t crpc_buf_len(const crpc_buf *buf) { return buf->len; }

crpc_buf *crpc_buf_ref(crpc_buf *buf) {
  __atomic_add_fetch(&buf->refs, 1, __ATOMIC_RELAXED);
  return buf;
}

void crpc_buf_unref(crpc_buf *buf) {
  if (buf != NULL && __atomic_sub_fetch(&buf->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    crpc_mem_free(buf);
  }
}

crpc_h2_chunk *crpc_h2_chunk_from_buf(crpc_wire_encoding e, crpc_buf *buf,
                                      crpc_code *code) {
  crpc_h2_chunk *c;
  if (e != CRPC_WIRE_ENCODING_IDENTITY) {
    c = crpc_h2_chunk_frame_encoded(e, crpc_buf_data(buf), buf->len, code);
    crpc_buf_unref(buf);
    return c;
  }
  c = crpc_mem_alloc(sizeof(*c));
  if (c == NULL) {
    *code = CRPC_RESOURCE_EXHAUSTED;
    crpc_buf_unref(buf);
    return NULL;
  }
  c->next = NULL;
  c->off = 0;
  c->refs = 1;
  c->len = CRPC_WIRE_FRAME_PREFIX_LEN + buf->len;
  c->bytes = buf->frame;
  c->buf = buf; /* the caller's reference */
  return c;
}

void crpc_h2_outq_tally(const crpc_h2_outq *q, bool skip_started,
                        uint64_t *messages, uint64_t *bytes) {
  uint64_t n = 0, b = 0;
  for (const crpc_h2_chunk *c = q->head; c != NULL; c = c->next) {
    if (c == q->head && skip_started && c->off > 0) continue;
    n++;
    b += c->len - c->off;
  }
  *messages += n;
  *bytes += b;
}

void crpc_h2_outq_push(crpc_h2_outq *q, crpc_h2_chunk *chunk) {
  chunk->next = NULL;
  if (q->tail != NULL) {
    q->tail->next = chunk;
  } else {
    q->head = chunk;
  }
  q->tail = chunk;
  q->bytes += chunk->len - chunk->off;
  q->pushed++;
}

void crpc_h2_outq_push_front(crpc_h2_outq *q, crpc_h2_chunk *chunk) {
  chunk->next = q->head;
  q->head = chunk;
  if (q->tail == NULL) q->tail = chunk;
  q->bytes += chunk->len - chunk->off;
}

size_t crpc_h2_outq_read(crpc_h2_outq *q, uint8_t *buf, size_t cap) {
  size_t done = 0;
  while (done < cap && q->head != NULL) {
    crpc_h2_chunk *c = q->head;
    size_t n = c->len - c->off;
    if (n > cap - done) n = cap - done;
    memcpy(buf + done, c->bytes + c->off, n);
    c->off += n;
    done += n;
    if (c->off == c->len) {
      q->head = c->next;
      if (q->head == NULL) q->tail = NULL;
      crpc_h2_chunk_unref(c);
    }
  }
  q->bytes -= done;
  q->taken += done;
  return done;
}

void crpc_h2_chunk_unref(crpc_h2_chunk *chunk) {
  if (chunk != NULL &&
      __atomic_sub_fetch(&chunk->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    crpc_buf_unref(chunk->buf);
    crpc_mem_free(chunk);
  }
}

bool crpc_h2_outq_take(crpc_h2_outq *q, size_t len, crpc_h2_slice_fn fn,
                       void *arg) {
  bool ok = true;
  q->bytes -= len;
  q->taken += len;
  while (len > 0 && q->head != NULL) {
    crpc_h2_chunk *c = q->head;
    size_t n = c->len - c->off;
    if (n > len) n = len;
    const uint8_t *p = c->bytes + c->off;
    c->off += n;
    len -= n;
    if (c->off == c->len) { /* the queue's reference goes with it */
      q->head = c->next;
      if (q->head == NULL) q->tail = NULL;
    } else {
      __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    }
    ok = fn(arg, c, p, n) && ok;
  }
  return ok;
}

void crpc_h2_outq_clear(crpc_h2_outq *q) {
  crpc_h2_chunk *c = q->head;
  while (c != NULL) {
    crpc_h2_chunk *next = c->next;
    crpc_h2_chunk_unref(c);
    c = next;
  }
  q->head = q->tail = NULL;
  q->bytes = 0;
}

void crpc_h2_outq_drop_unstarted(crpc_h2_outq *q) {
  crpc_h2_chunk *keep = q->head;
  if (keep == NULL || keep->off == 0) {
    crpc_h2_outq_clear(q);
    return;
  }
  crpc_h2_chunk *c = keep->next;
  while (c != NULL) {
    crpc_h2_chunk *next = c->next;
    crpc_h2_chunk_unref(c);
    c = next;
  }
  keep->next = NULL;
  q->head = q->tail = keep;
  q->bytes = keep->len - keep->off;
}

bool crpc_h2_msgq_pop(crpc_h2_msgq *q, crpc_message *out) {
  crpc_h2_msg *m = q->head;
  if (m == NULL) return false;
  q->head = m->next;
  if (q->head == NULL) q->tail = NULL;
  q->count--;
  out->data = m->data;
  out->len = m->len;
  out->end = false;
  out->compressed = m->compressed;
  crpc_mem_free(m);
  return true;
}

void crpc_h2_msgq_clear(crpc_h2_msgq *q) {
  crpc_message m;
  while (crpc_h2_msgq_pop(q, &m)) free(m.data);
}

void crpc_h2_inbound_init(crpc_h2_inbound *in, size_t max_message,
                          bool is_server) {
  memset(in, 0, sizeof(*in));
  in->max_message = max_message;
  in->is_server = is_server;
  in->encoding = CRPC_WIRE_ENCODING_IDENTITY;
  crpc_wire_frame_decoder_init(&in->decoder, max_message);
}

void crpc_h2_inbound_destroy(crpc_h2_inbound *in) {
  crpc_wire_frame_decoder_destroy(&in->decoder);
  crpc_h2_msgq_clear(&in->q);
}

static crpc_code enqueue(crpc_h2_inbound *in, crpc_wire_message *wm,
                         crpc_wire_error *err) {
  if (in->max_messages != 0 && in->total >= in->max_messages) {
    free(wm->data);
    return crpc_wire_error_set(
        err, CRPC_INTERNAL, "%s",
        in->too_many != NULL ? in->too_many : "one message too many");
  }
  uint8_t *data = wm->data;
  size_t len = wm->len;
  crpc_code code = crpc_wire_check_compressed_flag(wm->compressed, in->encoding,
                                                   in->is_server, err);
  if (code != CRPC_OK) {
    free(wm->data);
    return code;
  }
  if (wm->compressed) {
    code = crpc_wire_decompress(in->encoding, wm->data, wm->len,
                                in->max_message, &data, &len, err);
    free(wm->data);
    if (code != CRPC_OK) return code;
  }
  crpc_h2_msg *m = crpc_mem_alloc(sizeof(*m));
  if (m == NULL) {
    free(data);
    return crpc_wire_error_set(err, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  m->next = NULL;
  m->data = data;
  m->len = len;
  m->compressed = wm->compressed;
  if (in->q.tail != NULL) {
    in->q.tail->next = m;
  } else {
    in->q.head = m;
  }
  in->q.tail = m;
  in->q.count++;
  in->total++;
  return CRPC_OK;
}

crpc_code crpc_h2_inbound_feed(crpc_h2_inbound *in, const uint8_t *data,
                               size_t len, crpc_wire_error *err) {
  in->held += len;
  in->fed += len;
  while (len > 0) {
    size_t used = 0;
    crpc_wire_message wm;
    int rc = crpc_wire_frame_decoder_feed(&in->decoder, data, len, &used, &wm);
    if (rc == CRPC_WIRE_FRAME_ERROR) {
      *err = *crpc_wire_frame_decoder_error(&in->decoder);
      return err->code;
    }
    data += used;
    len -= used;
    if (rc == CRPC_WIRE_FRAME_MESSAGE) {
      crpc_code code = enqueue(in, &wm, err);
      if (code != CRPC_OK) return code;
    }
  }
  return CRPC_OK;
}

size_t crpc_h2_inbound_take_consumable(crpc_h2_inbound *in) {
  if (in->q.count != 0) return 0;
  size_t n = in->held;
  in->held = 0;
  return n;
}

bool crpc_h2_inbound_return_due(const crpc_h2_inbound *in,
                                uint32_t stream_window) {
  uint32_t w = stream_window == 0 || stream_window > CRPC_H2_INITIAL_WINDOW
                   ? CRPC_H2_INITIAL_WINDOW
                   : stream_window;
  return in->q.count == 0 && in->held > 0 && in->held >= w / 2;
}

nghttp2_nv *crpc_h2_nv_from(const crpc_wire_headers *h, nghttp2_nv *buf,
                            size_t buf_len) {
  nghttp2_nv *nv = h->count <= buf_len
                       ? buf
                       : malloc(sizeof(*nv) * (h->count ? h->count : 1));
  if (nv == NULL) return NULL;
  for (size_t i = 0; i < h->count; i++) {
    const crpc_wire_header *it = &h->items[i];
    nv[i].name = (uint8_t *)it->name;
    nv[i].namelen = it->name_len;
    nv[i].value = (uint8_t *)it->value;
    nv[i].valuelen = it->value_len;
    nv[i].flags = it->borrowed ? NGHTTP2_NV_FLAG_NO_COPY_NAME |
                                     NGHTTP2_NV_FLAG_NO_COPY_VALUE
                               : NGHTTP2_NV_FLAG_NONE;
  }
  return nv;
}

void crpc_h2_nv_free(nghttp2_nv *nv, const nghttp2_nv *buf) {
  if (nv != buf) free(nv);
}

crpc_code crpc_h2_headers_add(crpc_wire_headers *h, const char *name,
                              const char *value) {
  return crpc_wire_headers_add(h, name, strlen(name), value, strlen(value));
}
