// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* The program netcube attaches to a netdev's ingress (XDP, or TC clsact): it
 * gives the packet fresh metadata, stamped with the current generation, and
 * hands it to the netdev's peer: a cube port or the first transparent cube stacked
 * on the netdev. Rewiring never changes the program, only peer words.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netcube/abi.h>
#include <netcube/hook.h>
#include <netcube/maps.h>
#include <netcube/deliver.h>

/* Encoded peer of this netdev, per generation; one map per attached netdev. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NC_GENERATIONS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} nc_netdev_peer SEC(".maps");

SEC(NC_SEC) int nc_netdev_ingress(struct nc_ctx *ctx)
{
	struct nc_md md = {};
	__u32 gen = nc_current_gen();
	__u64 *peer;

	peer = bpf_map_lookup_elem(&nc_netdev_peer, &gen);
	if (!peer)
		return NC_ACT_PASS;
	if (nc_md_init(ctx)) {
		nc_count_error(NC_ERR_NO_METADATA);
		return NC_ACT_DROP;
	}
	md.flags = gen;
	return nc_deliver(ctx, &md, *(volatile __u64 *)peer);
}

char _license[] SEC("license") = "GPL";
