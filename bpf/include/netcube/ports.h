/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Looking at a cube's ports from its fast path: what a port is connected to, and
 * (TC only) sending copies of a packet out of several ports — a cube that floods,
 * such as a bridge, needs both. A copy can leave through a port whose peer is a
 * netdev; a port whose peer is another cube can only take the packet itself
 * (nc_redirect), as a tail call does not return.
 */
#ifndef __NETCUBE_PORTS_H
#define __NETCUBE_PORTS_H

#include "cube.h"

/* The peer of @port in this packet's generation: an encoded peer, 0 when none. */
static __always_inline __u64 nc_port_peer(const struct nc_md *md, __u32 port)
{
	if (port >= NC_MAX_PORTS)
		return 0;
	return nc_port_word(md->flags & NC_MD_F_GEN, port);
}

/* The ifindex of the netdev that @port is linked to, or 0 when its peer is no
 * netdev (a cube, the stack, nothing): for a cube that sends out of that netdev
 * by the kernel's routes and neighbours (bpf_fib_lookup asks for the netdev).
 */
static __always_inline __u32 nc_port_netdev(const struct nc_md *md, __u32 port)
{
	__u64 peer = nc_port_peer(md, port);

	return nc_peer_kind(peer) == NC_PEER_NETDEV ? nc_peer_target(peer) : 0;
}

#ifdef NC_HOOK_TC
/* Sends a copy of the packet out of @port, whose peer must be a netdev; the
 * packet itself stays with the caller. Returns 0 when the copy left.
 */
static __always_inline int nc_clone_out(struct nc_ctx *ctx, const struct nc_md *md, __u32 port)
{
	__u32 ifindex = nc_port_netdev(md, port);

	if (!ifindex || bpf_clone_redirect(ctx, ifindex, 0))
		return -1;
	nc_count_tx(ctx, md, port);
	return 0;
}
#endif

#endif /* __NETCUBE_PORTS_H */
