// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* A cube that also carries a program outside the framework's entry points, a
 * kprobe: the type policy refuses it (test/fault/elf.test.ts). Never for real use.
 */
#include <netcube/netcube.h>

static __always_inline int forward(struct nc_ctx *ctx, struct nc_md *md)
{
	return nc_redirect(ctx, md, md->in_port ^ 1);
}

NC_CUBE(forward);

SEC("kprobe/do_sys_openat2")
int watch_opens(void *ctx)
{
	return 0;
}
