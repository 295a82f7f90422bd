/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Where packets enter netcube: the program the daemon attaches to a netdev's
 * ingress (XDP, or TC clsact). It stamps the packet with the host's current
 * generation and hands it to the netdev's peer of that generation: a cube port, or
 * the first transparent cube stacked on the netdev.
 *
 * The program attached is the entry of the netdev's first cube itself, built into
 * every cube object (nc_netdev in cube.h) and loaded once per netdev with that
 * netdev's maps: a packet then runs the cube without a tail call, its metadata on
 * the stack. It does so only while the netdev's peer word says so
 * (NC_PEER_F_FUSED); otherwise, while a rewiring is under way or when no cube's
 * program could be fused, it goes the general way of nc_netdev_deliver: a tail
 * call to the peer named by the word (framework/netdev.bpf.c is that way alone).
 * Rewiring never changes a program before it changes the words.
 */
#ifndef __NETCUBE_NETDEV_H
#define __NETCUBE_NETDEV_H

#include "abi.h"
#include "hook.h"
#include "maps.h"
#include "deliver.h"

/* Encoded peer of this netdev, per generation; one map per attached netdev. A
 * global in a section of its own (see nc_ports in cube.h): one load to read. */
volatile __u64 nc_netdev_peer[NC_GENERATIONS] SEC(".data.nc_netdev");

/* The entry program of the cube the peer word names, per generation; written
 * with the word. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NC_GENERATIONS);
	__type(key, __u32);
	__type(value, __u32);
} nc_netdev_progs SEC(".maps");

/* The netdev's peer in generation @gen. */
static __always_inline __u64 nc_netdev_word(__u32 gen)
{
	return nc_netdev_peer[gen & NC_MD_F_GEN];
}

/* The general way in: fresh metadata, then the peer of @gen (@peer). */
static __always_inline int nc_netdev_deliver(struct nc_ctx *ctx, __u32 gen, __u64 peer)
{
	struct nc_md md = { .flags = gen };

	if (nc_peer_kind(peer) != NC_PEER_CUBE)
		return nc_deliver_out(ctx, peer);
	if (nc_enter_cube(ctx, &md, peer)) {
		nc_count_error(NC_ERR_NO_METADATA);
		return NC_ACT_DROP;
	}
	nc_jump_2(ctx, &nc_netdev_progs, gen);
	return nc_jump_failed();
}

#endif /* __NETCUBE_NETDEV_H */
