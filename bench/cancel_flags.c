/*
 * bench/cancel_flags.c - cancel_bench's command line (cancel_flags.h).
 */
#include "bench/cancel_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
  fprintf(stderr,
          "usage: cancel_bench [-iters N] [-warmup M] [-mode blocking|async]\n"
          "         [-scenarios idle,busy,busy-reads256,deadline]\n"
          "         [-reads 4] [-reads-long 256] [-deadline-ms 5] "
          "[-poll-us N] [-client-poll-us N] [-late-us N]\n"
          "         [-port N] [-load-wait N] [-client-cpu N]\n");
  exit(2);
}

static int parse_int(const char *s, int min) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < min || v > 100000000) usage();
  return (int)v;
}


void cancel_flags_parse(int argc, char **argv, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') usage();
    a += a[1] == '-' ? 2 : 1;
    char name[32];
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (len >= sizeof(name)) usage();
    memcpy(name, a, len);
    name[len] = '\0';
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (val == NULL) usage();
    if (!strcmp(name, "iters")) {
      o->b.iters = parse_int(val, 1);
    } else if (!strcmp(name, "warmup")) {
      o->b.warmup = parse_int(val, 0);
    } else if (!strcmp(name, "reads")) {
      o->b.reads = parse_int(val, 0);
    } else if (!strcmp(name, "reads-long")) {
      o->b.reads_long = parse_int(val, 0);
    } else if (!strcmp(name, "deadline-ms")) {
      o->b.deadline_ms = parse_int(val, 1);
    } else if (!strcmp(name, "mode")) {
      if (strcmp(val, "blocking") && strcmp(val, "async")) usage();
      o->async = !strcmp(val, "async");
    } else if (!strcmp(name, "scenarios")) {
      o->scenarios = val;
    } else if (!strcmp(name, "poll-us")) {
      o->poll_us = parse_int(val, 0);
    } else if (!strcmp(name, "port")) {
      o->port = parse_int(val, 0);
    } else if (!strcmp(name, "client-cpu")) {
      o->client_cpu = parse_int(val, 0);
    } else if (!strcmp(name, "load-wait")) {
      o->load_wait = parse_int(val, 0);
    } else if (!strcmp(name, "late-us")) {
      o->b.late_us = parse_int(val, 0);
    } else if (!strcmp(name, "client-poll-us")) {
      o->client_poll_us = parse_int(val, 0);
    } else {
      usage();
    }
  }
}

void cancel_flags_scenarios(const options *o, const char *long_name,
                            bool want[4]) {
  static const char *const fixed[] = {"idle", "busy", NULL, "deadline"};
  char *list = strdup(o->scenarios);
  if (list == NULL) {
    fprintf(stderr, "cancel_bench: out of memory\n");
    exit(1);
  }
  char *save = NULL;
  for (char *t = strtok_r(list, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    bool known = false;
    for (int k = 0; k < 4; k++) {
      const char *name = k == 2 ? long_name : fixed[k];
      if (!strcmp(t, name)) want[k] = known = true;
    }
    if (!known) {
      fprintf(stderr, "cancel_bench: unknown scenario %s (idle, busy, %s, "
                      "deadline)\n", t, long_name);
      free(list);
      exit(2);
    }
  }
  free(list);
}
