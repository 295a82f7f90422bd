/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Delivering a packet to a peer: the one place that turns an encoded peer word
 * into a redirect, a tail call, a pass or a drop. Used by cubes (nc_redirect),
 * by the netdev entry and by packet-out.
 */
#ifndef __NETCUBE_DELIVER_H
#define __NETCUBE_DELIVER_H

#include "abi.h"
#include "hook.h"
#include "maps.h"

static __always_inline __u32 nc_peer_kind(__u64 peer) { return peer >> 56; }
static __always_inline __u32 nc_peer_port(__u64 peer) { return (peer >> 48) & 0xff; }
static __always_inline __u32 nc_peer_flags(__u64 peer) { return (peer >> 40) & 0xff; }
static __always_inline __u32 nc_peer_target(__u64 peer) { return (__u32)peer; }

/* Hand the packet to @peer. For a cube peer, the metadata gets the next cube's
 * in-port and id (the caller decides which words it keeps) and is stored with the
 * packet before the tail call. A tail call only returns when the slot is empty or
 * the kernel's limit of 33 is reached: the packet is then dropped and counted.
 */
static __always_inline int nc_deliver(struct nc_ctx *ctx, struct nc_md *md, __u64 peer)
{
	__u32 slot;

	switch (nc_peer_kind(peer)) {
	case NC_PEER_NETDEV:
		return nc_redirect_netdev(ctx, nc_peer_target(peer), nc_peer_flags(peer));
	case NC_PEER_CUBE:
		slot = nc_peer_target(peer);
		md->in_port = nc_peer_port(peer);
		md->cube_id = slot / NC_MAX_MICROCUBES;
		if (nc_md_store(ctx, md))
			return NC_ACT_DROP;
		bpf_tail_call(ctx, &nc_progs, slot);
		nc_count_error(NC_ERR_TAIL_CALL);
		return NC_ACT_DROP;
	case NC_PEER_STACK:
		return NC_ACT_PASS;
	}
	return NC_ACT_DROP;
}

#endif /* __NETCUBE_DELIVER_H */
