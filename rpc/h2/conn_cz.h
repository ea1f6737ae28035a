/*
 * rpc/h2/conn_cz.h - what a connection counts for channelz (internal;
 * rpc/channelz has the registry). Loop thread only: the fields are plain,
 * and channelz reads them by posting to the loop (crpc_h2_conn_cz_fill).
 *
 * Messages sent are counted as their last byte is handed to the socket's
 * output, so a message the peer's flow control still holds back is not
 * sent yet:
 *   - DATA by reference (plaintext server calls): each queued chunk is one
 *     framed message, so a chunk taken to its end is one message
 *     (crpc_h2_cz_chunks);
 *   - DATA copied by nghttp2 (TLS, the channel): the bytes nghttp2 emits
 *     are read as HTTP/2 frames and each stream's DATA payload as gRPC
 *     messages (5-byte prefix, then the length it gives), with a small
 *     per-stream state the owner keeps in its call (crpc_h2_msgscan,
 *     found through cz.stream). Only frame headers and message prefixes
 *     are read; message bodies are skipped by length.
 */
#ifndef CRPC_H2_CONN_CZ_H
#define CRPC_H2_CONN_CZ_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/channelz/channelz.h"
#include "rpc/h2/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

struct crpc_h2_conn;

/* One stream's place in its outgoing gRPC messages (zeroed: before the
 * first prefix). */
typedef struct crpc_h2_msgscan {
  uint32_t left;  /* body bytes of the current message still to come */
  uint8_t have;   /* prefix bytes seen (0-4; a full prefix starts a body) */
  bool body;      /* inside a body */
  uint8_t len[4]; /* the prefix's length field, as it arrives */
} crpc_h2_msgscan;

typedef struct crpc_h2_conn_cz {
  uint64_t messages_sent, pings_sent;
  int64_t last_message_sent_ns;
  /* The owner's: the scanner of stream_id's outgoing messages, or NULL
   * (not counted). Set after the connection starts; NULL: none counted
   * from copied DATA. */
  crpc_h2_msgscan *(*stream)(struct crpc_h2_conn *conn, int32_t stream_id);
  /* The owner's: nghttp2 never copies this connection's DATA (every
   * payload goes by reference), so its output is not read at all. */
  bool scan_off;
  /* Reading the bytes nghttp2 emits: bytes to pass over (the client's
   * connection preface, a frame payload that is not counted), DATA
   * payload bytes left of the current frame and its stream, and a frame
   * header being gathered. */
  uint32_t skip, data_left;
  int32_t data_stream;
  uint8_t hd[9];
  uint8_t hd_have;
} crpc_h2_conn_cz;

/* Sets up the counting of a session just started (its preface first). */
void crpc_h2_cz_init(crpc_h2_conn_cz *cz, nghttp2_session *session);

/* n bytes nghttp2 emitted (nghttp2_session_mem_send), in order. */
void crpc_h2_cz_scan(struct crpc_h2_conn *conn, const uint8_t *p, size_t n);

/* len bytes about to be taken by reference off q (a DATA frame's
 * payload): counts the messages they complete. */
void crpc_h2_cz_chunks(struct crpc_h2_conn *conn, const crpc_h2_outq *q,
                       size_t len);

/* What channelz reads of an open connection on its loop: the counters
 * above, the connection windows, the socket's addresses, TLS. */
void crpc_h2_conn_cz_fill(struct crpc_h2_conn *conn,
                          crpc_cz_socket_info *info);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_H2_CONN_CZ_H */
