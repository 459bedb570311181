/* remora SDK: error codes.
 *
 * Every SDK function that can fail returns an int: 0 on success or one of the negative codes
 * below. The codes equal negative errno values where a matching errno exists, so a plugin may
 * pass a failed system call's -errno straight through. rmr_strerror() names any of them.
 */
#ifndef REMORA_ERROR_H
#define REMORA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define RMR_OK           0
#define RMR_EPERM        (-1)    /* operation not permitted (a file's mode, a halted output) */
#define RMR_ENOENT       (-2)    /* no such entry: file, key, plugin, record */
#define RMR_EIO          (-5)    /* input/output error */
#define RMR_EAGAIN       (-11)   /* try again later */
#define RMR_ENOMEM       (-12)   /* out of memory, or a configured memory bound reached */
#define RMR_EACCES       (-13)   /* permission denied */
#define RMR_EEXIST       (-17)   /* already exists (duplicate name, route, instance) */
#define RMR_EINVAL       (-22)   /* invalid argument or input */
#define RMR_E2BIG        (-7)    /* too large: a body or response beyond its bound */
#define RMR_ERANGE       (-34)   /* value out of range */
#define RMR_ENAMETOOLONG (-36)   /* name or string longer than its bound */
#define RMR_ENOTSUP      (-95)   /* not supported by this host, plugin or record kind */
#define RMR_EADDRINUSE   (-98)   /* a listener's address is taken */
#define RMR_ECONNRESET   (-104)  /* the peer closed or reset the connection */
#define RMR_EFULL        (-105)  /* a bounded queue is full (ENOBUFS): shed load or answer 429 */
#define RMR_ESTOPPED     (-108)  /* the instance is stopping or stopped (ESHUTDOWN) */
#define RMR_ETIMEDOUT    (-110)  /* timed out */
#define RMR_ECONNREFUSED (-111)  /* nobody listens at the address */
#define RMR_EINPROGRESS  (-115)  /* accepted; completion is reported later */
#define RMR_ECANCELED    (-125)  /* cancelled before it completed (the instance stopped) */
#define RMR_EABI         (-4001) /* a plugin and this host disagree on the ABI */
#define RMR_ECONFIG      (-4002) /* invalid configuration */
#define RMR_EPARSE       (-4003) /* malformed input that could not be parsed */

/* Describes an error code in a few lowercase words; unknown codes get a generic text.
 * Thread: any. Returns a static string; never NULL. */
static inline const char *rmr_strerror(int rc)
{
    switch (rc) {
    case RMR_OK: return "success";
    case RMR_EPERM: return "operation not permitted";
    case RMR_ENOENT: return "no such entry";
    case RMR_EIO: return "input/output error";
    case RMR_EAGAIN: return "resource temporarily unavailable";
    case RMR_ENOMEM: return "out of memory";
    case RMR_EACCES: return "permission denied";
    case RMR_EEXIST: return "already exists";
    case RMR_EINVAL: return "invalid argument";
    case RMR_E2BIG: return "too large";
    case RMR_ERANGE: return "value out of range";
    case RMR_ENAMETOOLONG: return "name too long";
    case RMR_ENOTSUP: return "not supported";
    case RMR_EADDRINUSE: return "address in use";
    case RMR_ECONNRESET: return "connection reset";
    case RMR_EFULL: return "queue full";
    case RMR_ESTOPPED: return "stopped";
    case RMR_ETIMEDOUT: return "timed out";
    case RMR_ECONNREFUSED: return "connection refused";
    case RMR_EINPROGRESS: return "in progress";
    case RMR_ECANCELED: return "cancelled";
    case RMR_EABI: return "incompatible plugin abi";
    case RMR_ECONFIG: return "invalid configuration";
    case RMR_EPARSE: return "malformed input";
    default: return "unknown error";
    }
}

#ifdef __cplusplus
}
#endif
#endif
