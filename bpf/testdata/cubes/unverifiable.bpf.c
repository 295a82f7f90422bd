// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* A cube the verifier refuses: it reads a packet byte without checking the
 * packet's end. For the test that RegisterType refuses such a type up front
 * (test/fault/elf.test.ts). Never for real use.
 */
#include <netcube/netcube.h>

static __always_inline int unverifiable(struct nc_ctx *ctx, struct nc_md *md)
{
	__u8 *data = (void *)(long)ctx->data;

	/* No bound check: "invalid access to packet". */
	if (data[0] == 0xff)
		return NC_ACT_DROP;
	return nc_redirect(ctx, md, md->in_port ^ 1);
}

NC_CUBE(unverifiable);
