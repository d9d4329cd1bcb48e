/* sockio.c — non-blocking socket writes shared by client and upstream
 * connections (conn.c, upconn.c). */
#include <errno.h>

#include "sockio.h"

long sl_fd_writev(int fd, const struct iovec *iov, int n)
{
    ssize_t r;
    do
        r = writev(fd, iov, n);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    return (long)r;
}

int sl_tls_push_fd(sl_tls_conn *t, int fd, size_t *written)
{
    const uint8_t *data;
    size_t n;
    while ((n = sl_tls_pending(t, &data)) > 0) {
        struct iovec v = {(void *)data, n};
        long w = sl_fd_writev(fd, &v, 1);
        if (w < 0)
            return (int)w;
        sl_tls_sent(t, (size_t)w);
        *written += (size_t)w;
        if ((size_t)w < n)
            return 1;
    }
    return 0;
}
