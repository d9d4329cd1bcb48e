/* sluice/uv.h — libsluice-uv: the sluice host as a library. Run sluice's
 * listeners, TLS and HTTP/2 + HTTP/1.1 in your own libuv loop, and answer
 * requests with your own handler (the configured routes serve the rest). */
#ifndef SLUICE_UV_H
#define SLUICE_UV_H

#include <uv.h>

#include "../sluice.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_server sluice_server;
/* A request being answered; valid only during the handler call. */
typedef struct sl_req sluice_request;

/* Return 0 once the request is answered (sluice_request_respond), or 1 to
 * let the configured routes answer it. */
typedef int (*sluice_handler)(sluice_request *req, void *ud);

/* Load a configuration file (the `sluice` program's language, see
 * doc/config.md) and bind its listeners. workers() is ignored: the server
 * runs in the calling thread, on loop. On failure err holds "file:line:
 * message" or the bind error. */
SLUICE_API int sluice_server_new(sluice_server **out, uv_loop_t *loop, const char *config,
                                 char *err, size_t errlen);
SLUICE_API void sluice_server_set_handler(sluice_server *srv, sluice_handler h, void *ud);
SLUICE_API int sluice_server_start(sluice_server *srv);
/* Stop: graceful (GOAWAY, streams finish, up to the drain timeout) or at
 * once. done runs on the loop when everything is closed; then free. */
SLUICE_API void sluice_server_stop(sluice_server *srv, int graceful,
                                   void (*done)(sluice_server *srv, void *ud), void *ud);
SLUICE_API void sluice_server_free(sluice_server *srv);

/* The request: NUL-terminated strings; authority may be NULL. */
SLUICE_API const char *sluice_request_method(const sluice_request *req);
SLUICE_API const char *sluice_request_path(const sluice_request *req);
SLUICE_API const char *sluice_request_authority(const sluice_request *req);
/* A request header by lowercase name (not NUL-terminated), or NULL. */
SLUICE_API const uint8_t *sluice_request_header(const sluice_request *req, const char *name,
                                                size_t *len);
/* Answer: status, extra headers, and a body that is copied. */
SLUICE_API int sluice_request_respond(sluice_request *req, int status, const sluice_nv *hdrs,
                                      size_t n, const void *body, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_UV_H */
