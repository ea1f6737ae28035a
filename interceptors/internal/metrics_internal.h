/*
 * interceptors/internal/metrics_internal.h - what metrics_client.c takes
 * from metrics.c. Not installed; not part of the API.
 */
#ifndef CRPC_INTERCEPTORS_INTERNAL_METRICS_INTERNAL_H
#define CRPC_INTERCEPTORS_INTERNAL_METRICS_INTERNAL_H

#include <stdint.h>

#include "interceptors/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counts one ended client call of method with code and its duration;
 * cause (NULL: none) is the caller's ctx's cause when that ended it.
 * Takes m's mutex. */
void icpt_metrics_client_record(crpc_metrics *m, const char *method,
                                crpc_code code, int64_t dur_ns,
                                const crpc_cause *cause);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_INTERNAL_METRICS_INTERNAL_H */
