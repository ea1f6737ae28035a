/*
 * rpc/version.c - the version the library was built as (crpc/version.h).
 * A function rather than only the macros so that a program can tell which
 * shared library it actually loaded.
 */
#include "crpc/version.h"

const char *crpc_version_string(void) { return CRPC_VERSION; }
