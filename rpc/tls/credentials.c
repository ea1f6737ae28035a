/*
 * credentials.c - building OpenSSL contexts from crpc's TLS options.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/tls/tls_internal.h"

/* The end of a long path: the file name is what a reader needs, and the
 * whole error must fit in CRPC_CREDENTIALS_ERROR_MAX with OpenSSL's reason. */
#define PATH_TAIL_MAX 96
static const char *path_tail(const char *path) {
  size_t n = strlen(path);
  return n > PATH_TAIL_MAX ? path + n - PATH_TAIL_MAX : path;
}
static const char *path_cut(const char *path) {
  return strlen(path) > PATH_TAIL_MAX ? "..." : "";
}

/* Fills error (if any) with the sentence and OpenSSL's last reason. */
static crpc_code fail(char *error, crpc_code code, const char *fmt, ...) {
  char what[CRPC_CREDENTIALS_ERROR_MAX - 64]; /* the rest is for the reason */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  unsigned long e = ERR_peek_last_error();
  const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
  if (error != NULL) {
    snprintf(error, CRPC_CREDENTIALS_ERROR_MAX, "%s%s%s", what,
             reason ? ": " : "", reason ? reason : "");
  }
  ERR_clear_error();
  return code;
}

/* ALPN on the server: "h2" or a fatal no_application_protocol alert. */
static int select_alpn(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel = NULL;
  unsigned char sel_len = 0;
  if (SSL_select_next_proto(&sel, &sel_len, CRPC_TLS_ALPN, CRPC_TLS_ALPN_LEN,
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = sel;
  *outlen = sel_len;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

/* Certificate chain and key, from files or PEM text. "what" names the
 * side in messages. */
static crpc_code use_cert_and_key(SSL_CTX *ctx, const char *chain_file,
                                  const char *chain_pem, const char *key_file,
                                  const char *key_pem, char *error) {
  if (chain_file != NULL) {
    if (SSL_CTX_use_certificate_chain_file(ctx, chain_file) != 1) {
      return fail(error, CRPC_INVALID_ARGUMENT,
                  "cannot load certificate chain %s%s", path_cut(chain_file),
                  path_tail(chain_file));
    }
  } else {
    BIO *bio = BIO_new_mem_buf(chain_pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    bool ok = leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        ok = false;
      }
    }
    BIO_free(bio);
    if (!ok) {
      return fail(error, CRPC_INVALID_ARGUMENT,
                  "cannot parse the certificate chain PEM");
    }
    ERR_clear_error(); /* the end of the PEM stream reads as an error */
  }
  if (key_file != NULL) {
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
      return fail(error, CRPC_INVALID_ARGUMENT, "cannot load private key %s%s",
                  path_cut(key_file), path_tail(key_file));
    }
  } else {
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    bool ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    BIO_free(bio);
    if (!ok) {
      return fail(error, CRPC_INVALID_ARGUMENT,
                  "cannot parse the private key PEM");
    }
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail(error, CRPC_INVALID_ARGUMENT,
                "private key does not match the certificate");
  }
  return CRPC_OK;
}

/* Trusted CAs from a file or PEM text; with `client_list`, they are also
 * the CA names a server sends in its certificate request. */
static crpc_code load_cas(SSL_CTX *ctx, const char *file, const char *pem,
                          bool client_list, char *error) {
  if (file != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
      return fail(error, CRPC_INVALID_ARGUMENT, "cannot load CA file %s%s",
                  path_cut(file), path_tail(file));
    }
    if (client_list) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(file);
      if (names != NULL) SSL_CTX_set_client_CA_list(ctx, names);
    }
    ERR_clear_error();
    return CRPC_OK;
  }
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  X509 *cert;
  while (bio && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    X509_STORE_add_cert(store, cert);
    if (client_list) SSL_CTX_add_client_CA(ctx, cert);
    X509_free(cert);
    n++;
  }
  BIO_free(bio);
  if (n == 0) {
    return fail(error, CRPC_INVALID_ARGUMENT, "no certificate in the CA PEM");
  }
  ERR_clear_error();
  return CRPC_OK;
}

static bool one_of(const char *a, const char *b) {
  return (a != NULL) != (b != NULL);
}

crpc_code crpc_server_credentials_new(const crpc_server_tls_options *o,
                                      crpc_server_credentials **out,
                                      char error[CRPC_CREDENTIALS_ERROR_MAX]) {
  *out = NULL;
  ERR_clear_error();
  if (o == NULL || !one_of(o->cert_chain_file, o->cert_chain_pem) ||
      !one_of(o->private_key_file, o->private_key_pem)) {
    return fail(error, CRPC_INVALID_ARGUMENT,
                "server TLS needs one certificate chain and one private key");
  }
  if (o->client_ca_file != NULL && o->client_ca_pem != NULL) {
    return fail(error, CRPC_INVALID_ARGUMENT, "give one client CA, not two");
  }
  bool mtls = o->client_ca_file != NULL || o->client_ca_pem != NULL;
  if (o->require_client_cert && !mtls) {
    return fail(error, CRPC_INVALID_ARGUMENT,
                "require_client_cert needs a client CA");
  }
  crpc_server_credentials *c = calloc(1, sizeof(*c));
  if (c == NULL) return CRPC_RESOURCE_EXHAUSTED;
  atomic_init(&c->refs, 1);
  c->handshake_timeout_ns = o->handshake_timeout_ns > 0
                                ? o->handshake_timeout_ns
                                : CRPC_TLS_DEFAULT_HANDSHAKE_TIMEOUT;
  c->ssl_ctx = new_ctx(TLS_server_method());
  if (c->ssl_ctx == NULL) {
    free(c);
    return fail(error, CRPC_RESOURCE_EXHAUSTED, "SSL_CTX_new failed");
  }
  crpc_code code =
      use_cert_and_key(c->ssl_ctx, o->cert_chain_file, o->cert_chain_pem,
                       o->private_key_file, o->private_key_pem, error);
  if (code == CRPC_OK && mtls) {
    code = load_cas(c->ssl_ctx, o->client_ca_file, o->client_ca_pem, true,
                    error);
    int mode = SSL_VERIFY_PEER;
    if (o->require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c->ssl_ctx, mode, NULL);
  }
  if (code != CRPC_OK) {
    crpc_server_credentials_free(c);
    return code;
  }
  SSL_CTX_set_alpn_select_cb(c->ssl_ctx, select_alpn, NULL);
  *out = c;
  return CRPC_OK;
}

crpc_server_credentials *crpc_tls_server_creds_ref(
    const crpc_server_credentials *creds) {
  crpc_server_credentials *c = (crpc_server_credentials *)creds;
  atomic_fetch_add(&c->refs, 1);
  return c;
}

int64_t crpc_tls_server_creds_handshake_timeout(
    const crpc_server_credentials *creds) {
  return creds->handshake_timeout_ns;
}

void crpc_server_credentials_free(crpc_server_credentials *c) {
  if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) return;
  SSL_CTX_free(c->ssl_ctx);
  free(c);
}

crpc_code crpc_channel_credentials_new(const crpc_channel_tls_options *opts,
                                       crpc_channel_credentials **out,
                                       char error[CRPC_CREDENTIALS_ERROR_MAX]) {
  *out = NULL;
  ERR_clear_error();
  crpc_channel_tls_options o = {0};
  if (opts != NULL) o = *opts;
  if (o.ca_file != NULL && o.ca_pem != NULL) {
    return fail(error, CRPC_INVALID_ARGUMENT, "give one CA, not two");
  }
  bool has_cert = o.cert_chain_file != NULL || o.cert_chain_pem != NULL;
  bool has_key = o.private_key_file != NULL || o.private_key_pem != NULL;
  if (has_cert || has_key) {
    if (!one_of(o.cert_chain_file, o.cert_chain_pem) ||
        !one_of(o.private_key_file, o.private_key_pem)) {
      return fail(error, CRPC_INVALID_ARGUMENT,
                  "a client certificate needs one chain and one private key");
    }
  }
  crpc_channel_credentials *c = calloc(1, sizeof(*c));
  if (c == NULL) return CRPC_RESOURCE_EXHAUSTED;
  atomic_init(&c->refs, 1);
  c->ssl_ctx = new_ctx(TLS_client_method());
  if (c->ssl_ctx == NULL) {
    free(c);
    return fail(error, CRPC_RESOURCE_EXHAUSTED, "SSL_CTX_new failed");
  }
  crpc_code code = CRPC_OK;
  if (o.server_name_override != NULL && *o.server_name_override != '\0') {
    c->override = strdup(o.server_name_override);
    if (c->override == NULL) code = CRPC_RESOURCE_EXHAUSTED;
  }
  if (code == CRPC_OK && has_cert) {
    code = use_cert_and_key(c->ssl_ctx, o.cert_chain_file, o.cert_chain_pem,
                            o.private_key_file, o.private_key_pem, error);
  }
  if (code == CRPC_OK) {
    if (o.ca_file != NULL || o.ca_pem != NULL) {
      code = load_cas(c->ssl_ctx, o.ca_file, o.ca_pem, false, error);
    } else if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
      code = fail(error, CRPC_INVALID_ARGUMENT,
                  "cannot load the system CA store");
    }
  }
  if (code == CRPC_OK &&
      SSL_CTX_set_alpn_protos(c->ssl_ctx, CRPC_TLS_ALPN, CRPC_TLS_ALPN_LEN) !=
          0) {
    code = fail(error, CRPC_RESOURCE_EXHAUSTED, "cannot set ALPN");
  }
  if (code != CRPC_OK) {
    crpc_channel_credentials_free(c);
    return code;
  }
  SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
  *out = c;
  return CRPC_OK;
}

crpc_channel_credentials *crpc_tls_channel_creds_ref(
    const crpc_channel_credentials *creds) {
  crpc_channel_credentials *c = (crpc_channel_credentials *)creds;
  atomic_fetch_add(&c->refs, 1);
  return c;
}

const char *crpc_tls_channel_creds_override(
    const crpc_channel_credentials *creds) {
  return creds->override;
}

void crpc_channel_credentials_free(crpc_channel_credentials *c) {
  if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) return;
  SSL_CTX_free(c->ssl_ctx);
  free(c->override);
  free(c);
}
