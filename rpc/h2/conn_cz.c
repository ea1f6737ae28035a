/*
 * conn_cz.c - a connection's channelz accounting (conn_cz.h).
 */
#include <string.h>
#include <sys/socket.h>

#include "crpc/ctx.h"
#include "rpc/h2/conn.h"
#include "rpc/tls/tls.h"

#define GRPC_PREFIX 5 /* compressed flag + 32-bit length */

void crpc_h2_cz_init(crpc_h2_conn_cz *cz, nghttp2_session *session) {
  memset(cz, 0, sizeof(*cz));
  /* A client's first bytes are the connection preface, not a frame. */
  if (!nghttp2_session_check_server_session(session)) {
    cz->skip = NGHTTP2_CLIENT_MAGIC_LEN;
  }
}

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

/* Feeds n bytes of one stream's DATA payload; returns the messages they
 * complete. Bodies are skipped by length, never read. */
static uint32_t scan_messages(crpc_h2_msgscan *s, const uint8_t *p,
                              size_t n) {
  uint32_t done = 0;
  while (n > 0) {
    if (s->body) {
      size_t k = s->left < n ? s->left : n;
      s->left -= (uint32_t)k;
      p += k;
      n -= k;
      if (s->left == 0) {
        s->body = false;
        done++;
      }
      continue;
    }
    if (s->have > 0) s->len[s->have - 1] = *p; /* byte 0 is the flag */
    s->have++;
    p++;
    n--;
    if (s->have == GRPC_PREFIX) {
      s->have = 0;
      s->left = be32(s->len);
      if (s->left > 0) {
        s->body = true;
      } else {
        done++; /* an empty message */
      }
    }
  }
  return done;
}

static void count_sent(crpc_h2_conn *conn, uint32_t messages) {
  if (messages == 0) return;
  conn->cz.messages_sent += messages;
  conn->cz.last_message_sent_ns = crpc_loop_now(conn->loop);
}

void crpc_h2_cz_scan(crpc_h2_conn *conn, const uint8_t *p, size_t n) {
  crpc_h2_conn_cz *cz = &conn->cz;
  if (cz->scan_off) return;
  uint32_t messages = 0;
  crpc_h2_msgscan *scan = NULL;
  bool looked = false; /* scan is the current DATA frame's stream's */
  while (n > 0) {
    if (cz->skip > 0) {
      size_t k = cz->skip < n ? cz->skip : n;
      cz->skip -= (uint32_t)k;
      p += k;
      n -= k;
      continue;
    }
    if (cz->data_left > 0) {
      size_t k = cz->data_left < n ? cz->data_left : n;
      if (!looked) {
        /* Looked up per call: the stream may close between two. */
        scan = cz->stream != NULL ? cz->stream(conn, cz->data_stream) : NULL;
        looked = true;
      }
      if (scan != NULL) messages += scan_messages(scan, p, k);
      cz->data_left -= (uint32_t)k;
      p += k;
      n -= k;
      continue;
    }
    const uint8_t *hd = p; /* a whole frame header here: no copy */
    if (cz->hd_have > 0 || n < sizeof(cz->hd)) {
      size_t k = sizeof(cz->hd) - cz->hd_have;
      if (k > n) k = n;
      memcpy(cz->hd + cz->hd_have, p, k);
      cz->hd_have += (uint8_t)k;
      p += k;
      n -= k;
      if (cz->hd_have < sizeof(cz->hd)) break;
      cz->hd_have = 0;
      hd = cz->hd;
    } else {
      p += sizeof(cz->hd);
      n -= sizeof(cz->hd);
    }
    uint32_t len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
    /* crpc never pads; a padded frame would only be skipped. */
    if (hd[3] == NGHTTP2_DATA && !(hd[4] & NGHTTP2_FLAG_PADDED)) {
      cz->data_left = len;
      cz->data_stream = (int32_t)(be32(hd + 5) & 0x7fffffffu);
      looked = false;
    } else {
      cz->skip = len;
    }
  }
  count_sent(conn, messages);
}

void crpc_h2_cz_chunks(crpc_h2_conn *conn, const crpc_h2_outq *q,
                       size_t len) {
  uint32_t messages = 0;
  for (const crpc_h2_chunk *c = q->head; c != NULL; c = c->next) {
    size_t rest = c->len - c->off;
    if (rest > len) break;
    len -= rest;
    messages++;
  }
  count_sent(conn, messages);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

void crpc_h2_conn_cz_fill(crpc_h2_conn *conn, crpc_cz_socket_info *info) {
  crpc_cz_data *d = &info->data;
  d->messages_sent += (int64_t)conn->cz.messages_sent;
  d->keepalives_sent += (int64_t)conn->cz.pings_sent;
  d->last_message_sent_ns =
      max64(d->last_message_sent_ns, conn->cz.last_message_sent_ns);
  if (!conn->closed && conn->session != NULL) {
    /* channelz's local window is the one the peer grants us. */
    info->has_windows = true;
    info->local_window = nghttp2_session_get_remote_window_size(conn->session);
    info->remote_window = nghttp2_session_get_local_window_size(conn->session);
  }
  if (conn->fd >= 0) {
    info->local_len = sizeof(info->local);
    if (getsockname(conn->fd, (struct sockaddr *)&info->local,
                    &info->local_len) != 0) {
      info->local_len = 0;
      info->local.ss_family = 0;
    }
    info->remote_len = sizeof(info->remote);
    if (getpeername(conn->fd, (struct sockaddr *)&info->remote,
                    &info->remote_len) != 0) {
      info->remote_len = 0;
      info->remote.ss_family = 0;
    }
  }
  if (conn->tls != NULL && !conn->tls_handshaking) {
    const char *cipher = NULL;
    crpc_tls_describe(conn->tls, &cipher, &info->local_cert,
                      &info->local_cert_len, &info->remote_cert,
                      &info->remote_cert_len);
    info->tls = true;
    info->cipher = cipher != NULL ? strdup(cipher) : NULL;
  }
}
