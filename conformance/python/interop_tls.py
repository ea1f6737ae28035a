"""TLS flags of the Python interop peers, shared by server and client, the
same as crpc's interop binaries take (conformance/README.md):

  server: --use_tls=true [--tls_cert_file=PEM --tls_key_file=PEM]
  client: --use_tls=true [--use_test_ca=true [--tls_ca_file=PEM]]
          [--server_host_override=NAME]

Without certificate flags they fall back to gRPC's own test credentials
where gRPC's interop runners keep them, as crpc's binaries do.
"""
import os
import sys

import grpc

# Where gRPC's interop runners have gRPC's test credentials: a gRPC
# checkout's root as the working directory, and gRPC's interop Docker images.
TEST_CREDS_DIRS = ("src/core/tsi/test_creds",
                   "/var/local/git/grpc/src/core/tsi/test_creds")
# The name gRPC's test server1.pem is issued for; gRPC's clients default
# their override to it whenever they trust the test CA.
TEST_CA_HOST = "foo.test.google.fr"


def flag_true(value):
    return value is not None and value.lower() in ("true", "1", "yes")


def find_test_cred(name):
    for d in TEST_CREDS_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.R_OK):
            return path
    return None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def add_server_flags(ap):
    ap.add_argument("--use_tls", default="false")
    ap.add_argument("--tls_cert_file", default=None)
    ap.add_argument("--tls_key_file", default=None)


def server_credentials(prog, args):
    """grpc.ssl_server_credentials for --use_tls=true, else None. Exits with
    a message if certificates are missing or given without TLS."""
    cert, key = args.tls_cert_file, args.tls_key_file
    if not flag_true(args.use_tls):
        if cert or key:
            sys.exit("%s: --tls_cert_file/--tls_key_file need --use_tls=true"
                     % prog)
        return None
    if cert is None and key is None:
        cert, key = find_test_cred("server1.pem"), find_test_cred("server1.key")
        if cert is None or key is None:
            sys.exit("%s: --use_tls=true needs --tls_cert_file and "
                     "--tls_key_file (gRPC's test server1.pem/server1.key are "
                     "not in %s)" % (prog, ", ".join(TEST_CREDS_DIRS)))
    elif cert is None or key is None:
        sys.exit("%s: give both --tls_cert_file and --tls_key_file" % prog)
    return grpc.ssl_server_credentials([(read(key), read(cert))])


def add_client_flags(ap):
    ap.add_argument("--use_tls", default="false")
    ap.add_argument("--use_test_ca", default="false")
    ap.add_argument("--tls_ca_file", default=None)
    ap.add_argument("--server_host_override", default=None)


def channel_credentials(prog, args):
    """(grpc.ssl_channel_credentials or None for plaintext, channel options
    for the name override). Exits with a message on inconsistent flags."""
    use_test_ca = flag_true(args.use_test_ca)
    override = args.server_host_override
    if not flag_true(args.use_tls):
        if use_test_ca or args.tls_ca_file:
            sys.exit("%s: --use_test_ca/--tls_ca_file need --use_tls=true"
                     % prog)
        return None, ([("grpc.default_authority", override)]
                      if override else [])
    ca = args.tls_ca_file
    if ca is None and use_test_ca:
        ca = find_test_cred("ca.pem")
        if ca is None:
            sys.exit("%s: --use_test_ca=true needs --tls_ca_file (gRPC's test "
                     "ca.pem is not in %s)" % (prog, ", ".join(TEST_CREDS_DIRS)))
    if override is None and use_test_ca:
        override = TEST_CA_HOST
    # grpcio: root_certificates None means its bundled/system roots.
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca) if ca else None)
    # The override names the server for the certificate check, in SNI and in
    # :authority (an empty one means none, as in gRPC's clients).
    opts = ([("grpc.ssl_target_name_override", override)] if override else [])
    return creds, opts
