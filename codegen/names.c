/*
 * codegen/names.c - C names for .proto elements.
 *
 * Message names must match what protoc-c 1.4 generates, so the first
 * functions copy its rules (protoc-c/c_helpers.cc: ToCamel, CamelToLower,
 * FullNameToC, FullNameToLower) exactly, quirks included ("HTTPGet" ->
 * "httpget", "a_B" -> "a__b"). crpc's own names reuse CamelToLower so that
 * a method reads the same in protoc-c's and crpc's generated code.
 */
#include <ctype.h>
#include <string.h>

#include "codegen/gen.h"

char *cg_to_camel(cg_arena *a, const char *s) {
  char *out = cg_alloc(a, strlen(s) + 1);
  size_t j = 0;
  bool next_upper = true;
  for (const char *p = s; *p; p++) {
    if (*p == '_') {
      next_upper = true;
    } else if (next_upper) {
      out[j++] = (char)toupper((unsigned char)*p);
      next_upper = false;
    } else {
      out[j++] = *p;
    }
  }
  return out;
}

char *cg_camel_to_lower(cg_arena *a, const char *s) {
  char *out = cg_alloc(a, 2 * strlen(s) + 1);
  size_t j = 0;
  bool was_upper = true; /* no leading '_' */
  for (const char *p = s; *p; p++) {
    bool is_upper = isupper((unsigned char)*p) != 0;
    if (is_upper && !was_upper) out[j++] = '_';
    out[j++] = (char)tolower((unsigned char)*p);
    was_upper = is_upper;
  }
  return out;
}

/* Joins the dotted pieces of full_name, each converted by conv, with "__". */
static char *join_pieces(cg_arena *a, const char *full_name,
                         char *(*conv)(cg_arena *, const char *)) {
  size_t cap = 3 * strlen(full_name) + 1;
  char *out = cg_alloc(a, cap);
  char *piece = cg_alloc(a, strlen(full_name) + 1);
  const char *p = full_name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      memcpy(piece, p, n);
      piece[n] = '\0';
      if (out[0]) strcat(out, "__");
      strcat(out, conv(a, piece));
    }
    p += n;
    if (*p == '.') p++;
  }
  return out;
}

char *cg_c_type_name(cg_arena *a, const char *full_name) {
  return join_pieces(a, full_name, cg_to_camel);
}

char *cg_c_descriptor_name(cg_arena *a, const char *full_name) {
  return cg_strf(a, "%s__descriptor",
                 join_pieces(a, full_name, cg_camel_to_lower));
}

/* C11 and C++20 keywords, plus lowercase names that common headers or
 * -std=gnu11 define as macros, plus the handlers struct's own member. */
static const char *const kReserved[] = {
    "_Alignas",
    "_Alignof",
    "_Atomic",
    "_Bool",
    "_Complex",
    "_Generic",
    "_Imaginary",
    "_Noreturn",
    "_Static_assert",
    "_Thread_local",
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "assert",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char16_t",
    "char32_t",
    "char8_t",
    "class",
    "co_await",
    "co_return",
    "co_yield",
    "compl",
    "complex",
    "concept",
    "const",
    "const_cast",
    "consteval",
    "constexpr",
    "constinit",
    "continue",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "errno",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "i386",
    "if",
    "imaginary",
    "inline",
    "int",
    "linux",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "noreturn",
    "not",
    "not_eq",
    "nullptr",
    "offsetof",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "stderr",
    "stdin",
    "stdout",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unix",
    "unsigned",
    "user_data",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
};

bool cg_is_keyword(const char *s) {
  for (size_t i = 0; i < sizeof kReserved / sizeof kReserved[0]; i++) {
    if (strcmp(s, kReserved[i]) == 0) return true;
  }
  return false;
}

void cg_resolve_names(cg_arena *a, const char *const *names, size_t n,
                      char **out) {
  for (size_t i = 0; i < n; i++) out[i] = cg_camel_to_lower(a, names[i]);
  /* Decide on the lowered forms first, then replace: every member of a
   * colliding group must switch, not just the later ones, or the result
   * would depend on declaration order in a surprising way. */
  bool *clash = cg_alloc(a, n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) {
      if (i != j && strcmp(out[i], out[j]) == 0) clash[i] = true;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (clash[i]) out[i] = cg_strf(a, "%s", names[i]);
  }
}

char *cg_guard_name(cg_arena *a, const char *proto_file) {
  /* A macro cannot start with a digit ("1.proto"). */
  const char *pre = isdigit((unsigned char)proto_file[0]) ? "CRPC_" : "";
  char *g = cg_strf(a, "%s%s_CRPC_H", pre, proto_file);
  for (char *p = g; *p; p++) {
    *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
  }
  return g;
}

char *cg_strip_proto(cg_arena *a, const char *proto_file) {
  char *s = cg_strf(a, "%s", proto_file);
  size_t n = strlen(s);
  if (n > 6 && strcmp(s + n - 6, ".proto") == 0) s[n - 6] = '\0';
  return s;
}
