/*
 * fuzz/record_peer.c - the crpc ends of the corpus recordings
 * (record_corpus.py puts a recording TCP proxy between them and real gRPC
 * peers):
 *
 *   record_peer serve
 *       Serves fuzz_service.h (the server fuzz target's methods) on
 *       127.0.0.1, prints "PORT <n>", and exits when stdin reaches EOF.
 *       grpcio and gRPC C++ clients talk to it: their bytes become the
 *       server target's corpus.
 *   record_peer client HOST:PORT SELECTOR [METHOD REQUEST]...
 *       Makes the calls the client fuzz target makes for SELECTOR
 *       (client_calls.h; decimal or 0x..), each METHOD REQUEST pair naming
 *       one call's method and request bytes (text), waits for them to end
 *       and prints each call's code. Real servers' answers become the client
 *       target's corpus.
 *   record_peer dump < FRAMES
 *       Reads one direction of a recorded connection (HTTP/2 frames, no
 *       preface) and prints its header fields, HPACK-decoded by nghttp2, as
 *       "H <stream> <hex name> <hex value>" and its DATA payloads as
 *       "D <stream> <hex bytes>", one per line, so record_corpus.py can cut
 *       the wire codecs' seeds (grpc-timeout, grpc-message, -bin values,
 *       messages) out of real traffic without an HPACK decoder of its own.
 * Exit status: 0 when the calls ended (whatever their codes) or the dump
 * is done, 1 on usage or set-up errors (or undecodable headers), 2 if a
 * call did not end in time.
 */
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crpc/channel.h"
#include "crpc/status.h"
#include "fuzz/client_calls.h"
#include "fuzz/fuzz_service.h"

static int serve(void) {
  fuzz_server fs;
  int port = 0;
  if (fuzz_server_start(&fs, "127.0.0.1:0", &port, 0) != CRPC_OK) {
    fprintf(stderr, "record_peer: cannot start the server\n");
    return 1;
  }
  printf("PORT %d\n", port);
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  fuzz_server_stop(&fs);
  return 0;
}

static int client(const char *target, unsigned selector, char **pairs,
                  int n_pairs) {
  fuzz_call_spec specs[FUZZ_CALLS_MAX];
  memset(specs, 0, sizeof specs);
  int calls = (selector & FUZZ_SEL_SECOND_CALL) ? 2 : 1;
  if (n_pairs != calls) {
    fprintf(stderr, "record_peer: selector 0x%x makes %d call(s): give %d "
            "METHOD REQUEST pair(s)\n", selector, calls, calls);
    return 1;
  }
  for (int i = 0; i < calls; i++) {
    specs[i].method = pairs[2 * i];
    specs[i].request = pairs[2 * i + 1];
    specs[i].request_len = strlen(pairs[2 * i + 1]);
  }
  crpc_channel_options opts = {
      .default_compression = fuzz_calls_compression((uint8_t)selector),
  };
  crpc_channel *ch = crpc_channel_new(target, &opts);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(),
                                        5 * CRPC_SECOND);
  if (ch == NULL || ctx == NULL) {
    fprintf(stderr, "record_peer: cannot create a channel to %s\n", target);
    return 1;
  }
  fuzz_calls fc;
  fuzz_calls_start(&fc, ch, ctx, (uint8_t)selector, specs);
  bool done = fuzz_calls_wait(&fc, 10000);
  if (!done) {
    /* Cancelling ends them; then they may be freed. If even that does not
     * end them, a callback may still come: leave without freeing. */
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "record_peer: calls took too long");
    if (!fuzz_calls_wait(&fc, 10000)) {
      fprintf(stderr, "record_peer: calls did not end after a cancel\n");
      _exit(2);
    }
  }
  for (int i = 0; i < fc.n; i++) {
    printf("call %d %s: %s, %zu message(s)\n", i + 1, specs[i].method,
           crpc_code_name(fc.calls[i].code), fc.calls[i].messages);
  }
  fuzz_calls_destroy(&fc);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);
  return done ? 0 : 2;
}

static void print_hex(const uint8_t *p, size_t n) {
  if (n == 0) putchar('-'); /* an empty field stays a field */
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

/* Decodes one header block; false if HPACK rejects it. */
static bool dump_block(nghttp2_hd_inflater *inf, uint32_t stream,
                       const uint8_t *in, size_t len) {
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, len, 1);
    if (n < 0) return false;
    in += n;
    len -= (size_t)n;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      printf("H %u ", stream);
      print_hex(nv.name, nv.namelen);
      putchar(' ');
      print_hex(nv.value, nv.valuelen);
      putchar('\n');
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      return true;
    }
    if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && len == 0) return true;
  }
}

/* Frame types and flags of RFC 9113 section 6 that the dump needs. */
enum { DATA = 0, HEADERS = 1, CONTINUATION = 9 };
enum { PADDED = 0x8, PRIORITY = 0x20, END_HEADERS = 0x4 };

static int dump(void) {
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf != NULL && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (bigger == NULL) free(buf);
      buf = bigger;
    }
  }
  nghttp2_hd_inflater *inf = NULL;
  uint8_t *block = malloc(len + 1);
  if (buf == NULL || block == NULL || nghttp2_hd_inflate_new(&inf) != 0) {
    fprintf(stderr, "record_peer: out of memory\n");
    return 1;
  }
  size_t off = 0, block_len = 0;
  int rc = 0;
  while (rc == 0 && len - off >= 9) {
    const uint8_t *h = buf + off;
    size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    uint8_t type = h[3], flags = h[4];
    uint32_t stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 |
                       (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;
    if (flen > len - off - 9) break; /* cut by the recorder */
    const uint8_t *p = h + 9, *end = p + flen;
    off += 9 + flen;
    if (type != DATA && type != HEADERS && type != CONTINUATION) continue;
    if (type != CONTINUATION && (flags & PADDED)) {
      if (p == end || (size_t)*p >= (size_t)(end - p)) continue;
      end -= *p++;
    }
    if (type == HEADERS && (flags & PRIORITY)) {
      if (end - p < 5) continue;
      p += 5;
    }
    if (type == DATA) {
      printf("D %u ", stream);
      print_hex(p, (size_t)(end - p));
      putchar('\n');
      continue;
    }
    if (type == HEADERS) block_len = 0;
    memcpy(block + block_len, p, (size_t)(end - p));
    block_len += (size_t)(end - p);
    if ((flags & END_HEADERS) && !dump_block(inf, stream, block, block_len)) {
      fprintf(stderr, "record_peer: undecodable header block\n");
      rc = 1;
    }
  }
  nghttp2_hd_inflate_del(inf);
  free(block);
  free(buf);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "dump") == 0) return dump();
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  if (argc >= 4 && strcmp(argv[1], "client") == 0) {
    char *end;
    unsigned long sel = strtoul(argv[3], &end, 0);
    if (*end == '\0' && sel <= 0xff && (argc - 4) % 2 == 0) {
      return client(argv[2], (unsigned)sel, argv + 4, (argc - 4) / 2);
    }
  }
  fprintf(stderr,
          "usage: record_peer serve\n"
          "       record_peer client HOST:PORT SELECTOR [METHOD REQUEST]...\n"
          "       record_peer dump < FRAMES\n");
  return 1;
}
