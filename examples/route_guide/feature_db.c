#include "examples/route_guide/feature_db.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one "latitude longitude name" line. 0 on success. */
static int parse_line(char *line, feature *out) {
  char *p = line, *end;
  long v[2];
  for (int i = 0; i < 2; i++) {
    errno = 0;
    v[i] = strtol(p, &end, 10);
    if (end == p || errno != 0 || v[i] < INT32_MIN || v[i] > INT32_MAX)
      return -1;
    p = end;
  }
  while (*p == ' ' || *p == '\t') p++;
  size_t len = strcspn(p, "\r\n");
  if (len == 0) return -1; /* every feature in the file has a name */
  out->latitude = (int32_t)v[0];
  out->longitude = (int32_t)v[1];
  out->name = strndup(p, len);
  return out->name ? 0 : -1;
}

int feature_db_load(const char *path, feature_db *db) {
  *db = (feature_db){0};
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 0;
  int lineno = 0, rc = 0;
  char line[512];
  while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *s = line + strspn(line, " \t");
    if (*s == '#' || *s == '\n' || *s == '\r' || *s == '\0') continue;
    if (db->count == cap) {
      cap = cap ? 2 * cap : 32;
      feature *grown = realloc(db->items, cap * sizeof *grown);
      if (grown == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        rc = -1;
        break;
      }
      db->items = grown;
    }
    if (parse_line(s, &db->items[db->count]) != 0) {
      fprintf(stderr, "%s:%d: expected \"latitude longitude name\"\n", path,
              lineno);
      rc = -1;
      break;
    }
    db->count++;
  }
  fclose(f);
  if (rc != 0) feature_db_free(db);
  return rc;
}

const feature *feature_db_find(const feature_db *db, int32_t latitude,
                               int32_t longitude) {
  for (size_t i = 0; i < db->count; i++)
    if (db->items[i].latitude == latitude &&
        db->items[i].longitude == longitude)
      return &db->items[i];
  return NULL;
}

void feature_db_free(feature_db *db) {
  for (size_t i = 0; i < db->count; i++) free(db->items[i].name);
  free(db->items);
  *db = (feature_db){0};
}

double feature_distance_m(int32_t lat1, int32_t lon1, int32_t lat2,
                          int32_t lon2) {
  const double to_rad = 3.14159265358979323846 / 180.0 / 1e7;
  const double earth_radius_m = 6371000.0;
  double phi1 = lat1 * to_rad, phi2 = lat2 * to_rad;
  double dphi = (lat2 - (double)lat1) * to_rad;
  double dlambda = (lon2 - (double)lon1) * to_rad;
  double a = sin(dphi / 2) * sin(dphi / 2) +
             cos(phi1) * cos(phi2) * sin(dlambda / 2) * sin(dlambda / 2);
  return earth_radius_m * 2 * atan2(sqrt(a), sqrt(1 - a));
}
