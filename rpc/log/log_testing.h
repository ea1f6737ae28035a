/*
 * rpc/log/log_testing.h - for tests only: CRPC_VERBOSITY and CRPC_TRACE
 * are read once per process; this reads them again (after a setenv), as
 * if crpc were starting now. Not thread-safe against concurrent setenv.
 */
#ifndef CRPC_LOG_LOG_TESTING_H
#define CRPC_LOG_LOG_TESTING_H

#ifdef __cplusplus
extern "C" {
#endif

void crpc_log_reload_env_for_test(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_LOG_LOG_TESTING_H */
