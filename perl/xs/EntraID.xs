/* PVE::EntraID::XS - the only C between PVE's Perl and libpve_entraid (include/pve_entraid.h).
 * JSON text in, (result code, JSON text) out; every answer the library allocates is copied
 * into a Perl string and released with pve_entraid_free() right away. */

#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include <string.h>

#include "pve_entraid.h"

/* Calls the entry point named by `method`; false when there is none. Direct calls rather than a
 * function pointer table keep this independent of how the header spells the result type. */
static int
call_entry(const char *method, const uint8_t *req, size_t req_len, char **out, uint32_t *rc)
{
    if (strcmp(method, "auth_url") == 0)
        *rc = (uint32_t)pve_entraid_auth_url(req, req_len, out);
    else if (strcmp(method, "login") == 0)
        *rc = (uint32_t)pve_entraid_login(req, req_len, out);
    else if (strcmp(method, "map") == 0)
        *rc = (uint32_t)pve_entraid_map(req, req_len, out);
    else if (strcmp(method, "check") == 0)
        *rc = (uint32_t)pve_entraid_check(req, req_len, out);
    else if (strcmp(method, "check_config") == 0)
        *rc = (uint32_t)pve_entraid_check_config(req, req_len, out);
    else if (strcmp(method, "sync_directory") == 0)
        *rc = (uint32_t)pve_entraid_sync_directory(req, req_len, out);
    else if (strcmp(method, "refuse_realm") == 0)
        *rc = (uint32_t)pve_entraid_refuse_realm(req, req_len, out);
    else if (strcmp(method, "workload_token") == 0)
        *rc = (uint32_t)pve_entraid_workload_token(req, req_len, out);
    else if (strcmp(method, "refuse_token") == 0)
        *rc = (uint32_t)pve_entraid_refuse_token(req, req_len, out);
    else
        return 0;
    return 1;
}

MODULE = PVE::EntraID::XS    PACKAGE = PVE::EntraID::XS

PROTOTYPES: DISABLE

const char *
version()
  CODE:
    RETVAL = pve_entraid_version();
  OUTPUT:
    RETVAL

void
call(method_sv, request)
    SV *method_sv
    SV *request
  PREINIT:
    const char *method;
    STRLEN method_len;
    const char *req;
    STRLEN req_len;
    char *out = NULL;
    uint32_t rc = 0;
    SV *answer;
  PPCODE:
    /* a name with a NUL byte inside would be compared up to it only ("map\0x" ran map) */
    method = SvPVbyte(method_sv, method_len);
    if (memchr(method, '\0', method_len) != NULL)
        croak("PVE::EntraID::XS::call: unknown method (the name contains a NUL byte)");
    /* the library wants UTF-8 bytes; a wide-character string dies here rather than being
     * mangled */
    req = SvPVbyte(request, req_len);
    if (!call_entry(method, (const uint8_t *)req, (size_t)req_len, &out, &rc))
        croak("PVE::EntraID::XS::call: unknown method '%s'", method);
    answer = out != NULL ? newSVpv(out, 0) : newSV(0);
    pve_entraid_free(out);
    EXTEND(SP, 2);
    mPUSHi((IV)rc);
    mPUSHs(answer);
