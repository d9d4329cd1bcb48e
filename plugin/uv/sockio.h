/* sockio.h — non-blocking socket writes shared by client and upstream
 * connections: plain iovecs, and the ciphertext a TLS connection has ready. */
#ifndef SL_UV_SOCKIO_H
#define SL_UV_SOCKIO_H

#include <stddef.h>
#include <sys/uio.h>

#include "tls.h"

/* writev() retried on EINTR: bytes written, 0 when the socket is full, or
 * a negative errno. */
long sl_fd_writev(int fd, const struct iovec *iov, int n);
/* Write the ciphertext t has ready to fd. Returns 0 when all went, 1 when
 * the socket filled up first, or a negative errno; *written (added to)
 * counts the bytes the socket took. */
int sl_tls_push_fd(sl_tls_conn *t, int fd, size_t *written);

#endif /* SL_UV_SOCKIO_H */
