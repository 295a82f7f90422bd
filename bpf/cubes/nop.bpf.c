// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* nop: the smallest cube, for tests and benchmarks. Two ports, 0 and 1; a packet
 * entering one leaves by the other.
 */
#include <netcube/netcube.h>

static __always_inline int nop(struct nc_ctx *ctx, struct nc_md *md)
{
	return nc_redirect(ctx, md, md->in_port ^ 1);
}

NC_CUBE(nop);
