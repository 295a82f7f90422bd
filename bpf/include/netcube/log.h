/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* nc_log(ctx, level, fmt, args...): a log line from the data plane.
 *
 * The data plane only copies the format string and up to NC_LOG_ARGS integer
 * arguments into a ring buffer; the daemon formats them, so printing an address
 * costs the fast path nothing. Besides %d %u %x (all 64-bit) the daemon knows
 *   %I  an IPv4 address in network order (a __be32)
 *   %M  a MAC address (nc_mac_arg(ptr))
 *   %P  a TCP/UDP port in network order (a __be16)
 * The level is compared with the cube's current level (nc_cfg), which the
 * daemon changes at run time: no reload.
 */
#ifndef __NETCUBE_LOG_H
#define __NETCUBE_LOG_H

#include "abi.h"
#include "maps.h"
#include "cube.h"

static __always_inline int nc_log_enabled(__u32 level)
{
	struct nc_cube_cfg *cfg = nc_cube_cfg();

	return cfg && level <= cfg->log_level;
}

/* A MAC address as one log argument: its 6 bytes in order, in the low 48 bits. */
static __always_inline __u64 nc_mac_arg(const __u8 *mac)
{
	return (__u64)mac[0] << 40 | (__u64)mac[1] << 32 | (__u64)mac[2] << 24 |
	       (__u64)mac[3] << 16 | (__u64)mac[4] << 8 | mac[5];
}

#define nc_log(_ctx, _level, _fmt, ...)						\
do {										\
	_Static_assert(sizeof(_fmt) <= NC_LOG_FMT_LEN,				\
		       "nc_log: format string longer than NC_LOG_FMT_LEN");	\
	(void)(_ctx);								\
	if (nc_log_enabled(_level)) {						\
		__u64 __nc_args[] = { 0, ##__VA_ARGS__ };			\
		struct nc_log_rec *__r;						\
										\
		_Static_assert(sizeof(__nc_args) / 8 - 1 <= NC_LOG_ARGS,	\
			       "nc_log: more than NC_LOG_ARGS arguments");	\
		__r = bpf_ringbuf_reserve(&nc_log_rb, sizeof(*__r), 0);	\
		if (__r) {							\
			__builtin_memset(__r, 0, sizeof(*__r));			\
			__r->ts_ns = bpf_ktime_get_ns();			\
			__r->cube_id = nc_cube_id;				\
			__r->level = (_level);					\
			__r->nargs = sizeof(__nc_args) / 8 - 1;			\
			__builtin_memcpy(__r->args, &__nc_args[1],		\
					 sizeof(__nc_args) - 8);		\
			__builtin_memcpy(__r->fmt, _fmt, sizeof(_fmt));		\
			bpf_ringbuf_submit(__r, 0);				\
		} else {							\
			nc_count_error(NC_ERR_LOG_FULL);			\
		}								\
	}									\
} while (0)

#endif /* __NETCUBE_LOG_H */
