/*
 * fuzz/replay_main.c - a main() for the fuzz targets without libFuzzer:
 * runs every input once through LLVMFuzzerTestOneInput, so the ordinary
 * gcc build (default and --config=asan) replays the whole corpus as a
 * regression test, and a crashing input can be rerun under a debugger.
 *
 * Usage: <target> [-libfuzzer-flags...] PATH...
 * A PATH that is a directory stands for the regular files in it, in name
 * order (so runs are repeatable); options starting with '-' are libFuzzer's
 * and ignored here. Prints how many inputs ran; exits 1 if a path cannot
 * be read or nothing ran, and aborts (through the target) on a failure.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t ran;

/* Reads a whole file; NULL on error. Empty files give a 1-byte buffer. */
static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    uint8_t *bigger = realloc(buf, cap * 2);
    if (bigger == NULL) free(buf);
    buf = bigger;
    cap *= 2;
  }
  bool bad = buf == NULL || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

static int run_file(const char *path) {
  size_t len = 0;
  uint8_t *data = read_file(path, &len);
  if (data == NULL) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    return 1;
  }
  /* A copy of exactly len bytes, so ASan catches a read past the end as
   * libFuzzer's own buffers would. */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) {
    free(data);
    return 1;
  }
  memcpy(exact, data, len);
  free(data);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  ran++;
  return 0;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", dir);
    return 1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **bigger = realloc(names, cap * sizeof *names);
      if (bigger == NULL) {
        rc = 1;
        break;
      }
      names = bigger;
    }
    size_t need = strlen(dir) + strlen(e->d_name) + 2;
    names[n] = malloc(need);
    if (names[n] == NULL) {
      rc = 1;
      break;
    }
    snprintf(names[n], need, "%s/%s", dir, e->d_name);
    n++;
  }
  closedir(d);
  if (n > 0) qsort(names, n, sizeof *names, cmp);
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      rc = run_file(names[i]);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    if (argv[i][0] == '-') continue;
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
      rc = 1;
    } else if (S_ISDIR(st.st_mode)) {
      rc = run_dir(argv[i]);
    } else {
      rc = run_file(argv[i]);
    }
  }
  printf("replay: %zu inputs ran\n", ran);
  if (rc == 0 && ran == 0) {
    fprintf(stderr, "replay: no inputs\n");
    rc = 1;
  }
  return rc;
}
