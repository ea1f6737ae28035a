/*
 * examples/route_guide/feature_db.h - the server's feature list, loaded
 * from a text file (route_guide_db.txt: "latitude longitude name" per line).
 */
#ifndef EXAMPLES_ROUTE_GUIDE_FEATURE_DB_H
#define EXAMPLES_ROUTE_GUIDE_FEATURE_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct feature {
  int32_t latitude; /* degrees * 10^7 */
  int32_t longitude;
  char *name;
} feature;

typedef struct feature_db {
  feature *items;
  size_t count;
} feature_db;

/* Loads path into *db. Returns 0, or -1 with "path:line: why" on stderr. */
int feature_db_load(const char *path, feature_db *db);

/* The feature at exactly (latitude, longitude), or NULL. */
const feature *feature_db_find(const feature_db *db, int32_t latitude,
                               int32_t longitude);

void feature_db_free(feature_db *db);

/* Great-circle distance in metres between two points (haversine). */
double feature_distance_m(int32_t lat1, int32_t lon1, int32_t lat2,
                          int32_t lon2);

#endif /* EXAMPLES_ROUTE_GUIDE_FEATURE_DB_H */
