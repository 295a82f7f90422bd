// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* Packet-out: the daemon sends a frame followed by a struct nc_inject_trailer
 * into its inject veth; this program, on the other end, reads where the frame goes
 * (an encoded peer: a cube's port for ingress, or the peer of a port for egress)
 * and the metadata words. The trailer travels with the frame, so a packet can
 * never meet another packet's metadata.
 *
 * Into a cube, the frame goes through the host's nc_progs at the slot the peer
 * word names: the one tail call of netcube whose index is read at run time, so
 * an indirect jump (see deliver.h). It is taken once per packet-out, on the slow
 * path: its 15-20 ns (the bench's dataplane.hop.indirect_ns) are nothing next to
 * the trip through a packet socket and a veth, or the controller's round trip
 * of a quarter of a millisecond (p8). A direct jump would need a call site per
 * cube of the host, or slots the daemon hands out and takes back while frames
 * are still queued in the veth.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netcube/abi.h>
#include <netcube/hook.h>
#include <netcube/maps.h>
#include <netcube/deliver.h>

/* The host's cubes' entry programs, at slot cube id * NC_MAX_MICROCUBES. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NC_PROG_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} nc_progs SEC(".maps");

static __always_inline int trim_trailer(struct nc_ctx *ctx, __u32 len)
{
#ifdef NC_HOOK_XDP
	return bpf_xdp_adjust_tail(ctx, -(int)sizeof(struct nc_inject_trailer));
#else
	return bpf_skb_change_tail(ctx, len - sizeof(struct nc_inject_trailer), 0);
#endif
}

SEC(NC_SEC) int nc_inject(struct nc_ctx *ctx)
{
	struct nc_inject_trailer t;
	struct nc_md md = {};
	__u32 len = nc_pkt_len(ctx);

	if (len < sizeof(t) + sizeof(struct ethhdr) || len > 0xffff)
		return NC_ACT_DROP;
	if (nc_load_bytes(ctx, len - sizeof(t), &t, sizeof(t)) || t.magic != NC_INJECT_MAGIC)
		return NC_ACT_DROP;
	/* Both hooks' programs sit on the inject veth; XDP runs first and lets the
	 * frames for TC cubes through, trailer and all.
	 */
	if (t.hook != NC_HOOK_ID)
		return NC_ACT_PASS;
	if (trim_trailer(ctx, len))
		return NC_ACT_DROP;
	if (nc_peer_kind(t.peer) != NC_PEER_CUBE)
		return nc_deliver_out(ctx, t.peer);
	md.flags = NC_MD_F_PACKET_OUT | (t.gen & NC_MD_F_GEN);
	md.user[0] = t.user[0];
	md.user[1] = t.user[1];
	md.user[2] = t.user[2];
	if (nc_enter_cube(ctx, &md, t.peer))
		return NC_ACT_DROP;
	bpf_tail_call(ctx, &nc_progs, nc_peer_target(t.peer));
	return nc_jump_failed();
}

char _license[] SEC("license") = "GPL";
