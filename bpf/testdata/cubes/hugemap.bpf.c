// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* A cube whose one table would take 16 GiB of kernel memory (2^31 entries of
 * 8 bytes): the type policy refuses it before anything is created
 * (test/fault/elf.test.ts). Never for real use.
 */
#include <netcube/netcube.h>

/* Far past any per-map limit. */
NC_TABLE(huge, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1u << 31, NC_SCOPE_CUBE);

static __always_inline int hugemap(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 zero = 0;
	__u64 *seen = bpf_map_lookup_elem(&huge, &zero);

	if (seen)
		(*seen)++;
	return nc_redirect(ctx, md, md->in_port ^ 1);
}

NC_CUBE(hugemap);
