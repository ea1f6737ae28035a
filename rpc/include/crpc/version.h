/*
 * crpc/version.h - which crpc this is.
 *
 * The macros are the version of the headers a program was compiled with;
 * crpc_version_string() is the version of the library it runs with. They
 * differ when a program built against one release runs with another shared
 * library of the same major version (the SONAME is libcrpc.so.<MAJOR>).
 *
 * Versions follow semver: MAJOR changes break the ABI or API; while MAJOR
 * is 0, MINOR changes may too (see CHANGELOG.md).
 */
#ifndef CRPC_VERSION_H
#define CRPC_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of these headers. Packaging reads the three numbers from
 * here (install.sh, deb.sh); //packaging:symbols_test checks the SONAME. */
#define CRPC_VERSION_MAJOR 0
#define CRPC_VERSION_MINOR 1
#define CRPC_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" as a string literal, e.g. "0.1.0". (The two
 * helpers ending in _ are not API: they turn a number into its text.) */
#define CRPC_VERSION_STR_(x) #x
#define CRPC_VERSION_XSTR_(x) CRPC_VERSION_STR_(x)
#define CRPC_VERSION                                                   \
  CRPC_VERSION_XSTR_(CRPC_VERSION_MAJOR)                               \
  "." CRPC_VERSION_XSTR_(CRPC_VERSION_MINOR) "." CRPC_VERSION_XSTR_(   \
      CRPC_VERSION_PATCH)

/* One number that orders versions: 0x00MMmmpp (major, minor, patch), for
 * `#if CRPC_VERSION_NUMBER >= 0x000200` style checks. */
#define CRPC_VERSION_NUMBER                                        \
  ((CRPC_VERSION_MAJOR << 16) | (CRPC_VERSION_MINOR << 8) |         \
   CRPC_VERSION_PATCH)

/* The running library's version, "MAJOR.MINOR.PATCH" (CRPC_VERSION as the
 * library was built). Static storage, never NULL; thread-safe. */
const char *crpc_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_VERSION_H */
