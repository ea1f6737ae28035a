/*
 * services/admin.c - crpc_server_add_admin_services, the one switch that
 * serves every admin service crpc has (crpc/admin.h). A new service is
 * one more step below.
 */
#include <stddef.h>

#include "crpc/admin.h"

crpc_code crpc_server_add_admin_services(crpc_server *server,
                                         crpc_health **health) {
  crpc_code code = CRPC_OK;
  crpc_health *h = crpc_health_service_add(server, &code);
  if (code == CRPC_OK) code = crpc_reflection_service_add(server);
  if (code == CRPC_OK) crpc_channelz_service_add(server, &code);
  if (code == CRPC_OK) code = crpc_admin_service_add(server);
  if (health != NULL) *health = code == CRPC_OK ? h : NULL;
  return code;
}
