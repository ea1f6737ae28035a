/*
 * session.c - a TLS session over a non-blocking socket: the socket BIO, the
 * server's step-wise handshake, the client's ctx-bounded handshake, reads,
 * writes and the peer's identity.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rpc/tls/tls_internal.h"

/* Truncating is fine for an error sentence; vsnprintf keeps the compiler
 * from flagging it. */
static void set_err(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(char *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, CRPC_TLS_ERR_MAX, fmt, ap);
  va_end(ap);
}

struct crpc_tls {
  SSL *ssl;
  bool broken;    /* a fatal error: no close_notify at free */
  bool handshook; /* handshake completed */
};

/* ---- the socket BIO: recv/send with MSG_NOSIGNAL ------------------------ */

static int bio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static int bio_write(BIO *b, const char *buf, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n;
  do {
    n = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    BIO_set_retry_write(b);
  }
  return (int)n;
}

static int bio_read(BIO *b, char *buf, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n;
  do {
    n = recv(bio_fd(b), buf, (size_t)len, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    BIO_set_retry_read(b);
  }
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *g_method;
static void init_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "crpc socket");
  if (m == NULL) abort();
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  g_method = m;
}

static crpc_tls *tls_new(SSL_CTX *ctx, int fd) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_method);
  crpc_tls *t = calloc(1, sizeof(*t));
  BIO *bio = BIO_new(g_method);
  if (t == NULL || bio == NULL || (t->ssl = SSL_new(ctx)) == NULL) {
    BIO_free(bio);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  BIO_set_data(bio, (void *)(intptr_t)fd);
  SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO */
  return t;
}

/* ---- errors -------------------------------------------------------------- */

/* Maps a failed SSL call onto a status; for EOF/ERROR, err gets the bare
 * reason ("certificate verify failed (certificate has expired)"). */
static crpc_tls_status io_status(crpc_tls *t, int ret, char *err) {
  int saved_errno = errno;
  int e = SSL_get_error(t->ssl, ret);
  unsigned long last = ERR_peek_last_error();
  crpc_tls_status st = CRPC_TLS_ERROR;
  if (e == SSL_ERROR_WANT_READ) {
    st = CRPC_TLS_WANT_READ;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    st = CRPC_TLS_WANT_WRITE;
  } else if (e == SSL_ERROR_ZERO_RETURN ||
             (e == SSL_ERROR_SYSCALL && saved_errno == 0 && last == 0)) {
    if (e != SSL_ERROR_ZERO_RETURN) t->broken = true;
    st = CRPC_TLS_EOF;
    set_err(err, "connection closed by peer");
  } else if (e == SSL_ERROR_SYSCALL) {
    t->broken = true;
    set_err(err, "%s",
            saved_errno ? strerror(saved_errno)
                        : ERR_reason_error_string(last));
  } else {
    t->broken = true;
    const char *reason = last ? ERR_reason_error_string(last) : NULL;
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
      set_err(err, "certificate verify failed (%s)",
              X509_verify_cert_error_string(vr));
    } else {
      set_err(err, "%s", reason ? reason : "protocol error");
    }
  }
  ERR_clear_error();
  return st;
}

/* After a completed handshake: ALPN must have chosen h2. */
static crpc_tls_status check_alpn(crpc_tls *t, char *err) {
  const unsigned char *p = NULL;
  unsigned int len = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &len);
  if (len != 2 || memcmp(p, "h2", 2) != 0) {
    t->broken = true; /* refuse without a clean shutdown */
    snprintf(err, CRPC_TLS_ERR_MAX,
             "peer did not negotiate ALPN \"h2\"");
    return CRPC_TLS_ERROR;
  }
  t->handshook = true;
  return CRPC_TLS_OK;
}

/* ---- server -------------------------------------------------------------- */

crpc_tls *crpc_tls_server_new(const crpc_server_credentials *creds, int fd) {
  crpc_tls *t = tls_new(creds->ssl_ctx, fd);
  if (t != NULL) SSL_set_accept_state(t->ssl);
  return t;
}

crpc_tls_status crpc_tls_handshake(crpc_tls *t, char err[CRPC_TLS_ERR_MAX]) {
  if (t->handshook) return CRPC_TLS_OK;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_do_handshake(t->ssl);
  if (rc != 1) return io_status(t, rc, err);
  return check_alpn(t, err);
}

/* ---- client -------------------------------------------------------------- */

static bool is_ip_literal(const char *s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

crpc_code crpc_tls_client_connect(const crpc_channel_credentials *creds,
                                  int fd, const char *host, const char *target,
                                  const crpc_ctx *ctx, crpc_tls **out,
                                  char err[CRPC_TLS_ERR_MAX]) {
  *out = NULL;
  crpc_tls *t = tls_new(creds->ssl_ctx, fd);
  if (t == NULL) {
    set_err(err, "out of memory starting TLS");
    return CRPC_RESOURCE_EXHAUSTED;
  }
  SSL_set_connect_state(t->ssl);
  const char *name = creds->override != NULL ? creds->override : host;
  bool ok;
  if (is_ip_literal(name)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1;
  } else {
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = SSL_set_tlsext_host_name(t->ssl, name) == 1 &&
         SSL_set1_host(t->ssl, name) == 1;
  }
  if (!ok) {
    set_err(err, "TLS: bad server name \"%s\"", name);
    t->broken = true;
    crpc_tls_free(t);
    return CRPC_INVALID_ARGUMENT;
  }
  char why[CRPC_TLS_ERR_MAX];
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(t->ssl);
    crpc_tls_status st =
        rc == 1 ? check_alpn(t, why) : io_status(t, rc, why);
    if (st == CRPC_TLS_OK) break;
    if (st == CRPC_TLS_EOF || st == CRPC_TLS_ERROR) {
      set_err(err, "TLS handshake with %s failed: %s", target, why);
      t->broken = true;
      crpc_tls_free(t);
      return CRPC_UNAVAILABLE;
    }
    short revents = 0;
    crpc_code code = crpc_ctx_wait_fd(
        ctx, fd, st == CRPC_TLS_WANT_READ ? POLLIN : POLLOUT, &revents);
    if (code != CRPC_OK) {
      snprintf(err, CRPC_TLS_ERR_MAX,
               "context done during the TLS handshake with %s", target);
      t->broken = true;
      crpc_tls_free(t);
      return code;
    }
  }
  *out = t;
  return CRPC_OK;
}

/* ---- data ---------------------------------------------------------------- */

crpc_tls_status crpc_tls_read(crpc_tls *t, void *buf, size_t cap, size_t *n,
                              char err[CRPC_TLS_ERR_MAX]) {
  *n = 0;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_read_ex(t->ssl, buf, cap, n);
  if (rc == 1) return CRPC_TLS_OK;
  char why[CRPC_TLS_ERR_MAX];
  crpc_tls_status st = io_status(t, rc, why);
  if (st == CRPC_TLS_EOF) set_err(err, "%s", why);
  if (st == CRPC_TLS_ERROR) set_err(err, "TLS: %s", why);
  return st;
}

crpc_tls_status crpc_tls_write(crpc_tls *t, const void *buf, size_t len,
                               size_t *n, char err[CRPC_TLS_ERR_MAX]) {
  *n = 0;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_write_ex(t->ssl, buf, len, n);
  if (rc == 1) return CRPC_TLS_OK;
  int write_errno = errno;
  char why[CRPC_TLS_ERR_MAX];
  crpc_tls_status st = io_status(t, rc, why);
  if (st == CRPC_TLS_EOF || st == CRPC_TLS_ERROR) {
    /* A peer that rejects us (say, a client certificate it does not
     * accept) sends an alert and hangs up; our write then fails with a
     * reset. The alert may still be waiting to be read, and it is the
     * better reason. */
    char alert[CRPC_TLS_ERR_MAX] = "";
    if (write_errno == ECONNRESET || write_errno == EPIPE) {
      uint8_t sink[256];
      size_t got = 0;
      ERR_clear_error();
      errno = 0;
      int r = SSL_read_ex(t->ssl, sink, sizeof(sink), &got);
      if (r != 1 && SSL_get_error(t->ssl, r) == SSL_ERROR_SSL) {
        unsigned long last = ERR_peek_last_error();
        if (last != 0) set_err(alert, "%s", ERR_reason_error_string(last));
      }
      ERR_clear_error();
    }
    set_err(err, "TLS: %s", alert[0] ? alert : why);
    st = CRPC_TLS_ERROR;
  }
  return st;
}

bool crpc_tls_pending(const crpc_tls *t) { return SSL_pending(t->ssl) > 0; }

/* ---- identity ------------------------------------------------------------ */

void crpc_tls_peer_identity(const crpc_tls *t,
                            char out[CRPC_TLS_IDENTITY_MAX]) {
  out[0] = '\0';
  X509 *cert = SSL_get0_peer_certificate(t->ssl);
  if (cert == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK) return;
  GENERAL_NAMES *sans =
      X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_DNS && g->type != GEN_URI) continue;
    const ASN1_IA5STRING *s =
        g->type == GEN_DNS ? g->d.dNSName : g->d.uniformResourceIdentifier;
    snprintf(out, CRPC_TLS_IDENTITY_MAX, "%.*s", ASN1_STRING_length(s),
             (const char *)ASN1_STRING_get0_data(s));
    break;
  }
  GENERAL_NAMES_free(sans);
  if (out[0] == '\0') {
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
                              CRPC_TLS_IDENTITY_MAX);
  }
  ERR_clear_error();
}

/* A malloc'd DER copy of cert (NULL, 0 if none or out of memory). */
static unsigned char *der_copy(X509 *cert, size_t *len) {
  *len = 0;
  unsigned char *der = NULL;
  int n = cert != NULL ? i2d_X509(cert, &der) : -1;
  unsigned char *copy = n > 0 ? malloc((size_t)n) : NULL;
  if (copy != NULL) {
    memcpy(copy, der, (size_t)n);
    *len = (size_t)n;
  }
  OPENSSL_free(der);
  return copy;
}

void crpc_tls_describe(const crpc_tls *t, const char **cipher,
                       unsigned char **local_der, size_t *local_len,
                       unsigned char **peer_der, size_t *peer_len) {
  const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
  *cipher = c != NULL ? SSL_CIPHER_standard_name(c) : NULL;
  *local_der = der_copy(SSL_get_certificate(t->ssl), local_len);
  *peer_der = der_copy(SSL_get0_peer_certificate(t->ssl), peer_len);
  ERR_clear_error();
}

void crpc_tls_free(crpc_tls *t) {
  if (t == NULL) return;
  if (t->handshook && !t->broken) {
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* close_notify, best effort, non-blocking */
  }
  SSL_free(t->ssl);
  ERR_clear_error();
  free(t);
}
