/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* nc_to_controller(ctx, md, reason): hand a packet to the cube's control plane.
 *
 * The packet's first NC_PKT_MAX bytes and its metadata go into one ring-buffer
 * record together, so the daemon never pairs a packet with metadata by order;
 * the record is stamped with the data plane's clock (bpf_ktime_get_ns), which
 * the controller receives with the packet (to age entries, or to measure).
 * The packet itself is consumed (the controller may send it back, changed or not,
 * as a packet-out). A per-cube token bucket (rate set by the daemon in nc_cfg)
 * keeps one cube from flooding the daemon; what it refuses is dropped and counted
 * (a drop of the in-port, and NC_ERR_PKT_RATE or NC_ERR_PKT_FULL).
 */
#ifndef __NETCUBE_SLOWPATH_H
#define __NETCUBE_SLOWPATH_H

#include "abi.h"
#include "maps.h"
#include "cube.h"

/* Slow-path token bucket of this cube. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nc_pkt_bucket);
} nc_pkt_bucket SEC(".maps");

/* Takes one packet's token from @b, refilled at @rate a second up to @burst
 * (0: one second's worth); 0 when none is left. Tokens are kept in thousandths,
 * so that a low rate still refills between packets.
 */
static __always_inline int nc_bucket_take(struct nc_pkt_bucket *b, __u64 rate, __u64 burst)
{
	__u64 now = bpf_ktime_get_ns(), elapsed = now - b->last_ns, tokens;

	/* Bound the refill so elapsed * rate cannot overflow. */
	if (elapsed > 10000000000ULL)
		elapsed = 10000000000ULL;
	burst = (burst ? burst : rate) * 1000;
	tokens = b->tokens_milli + elapsed * rate / 1000000;
	if (tokens > burst)
		tokens = burst;
	b->last_ns = now;
	if (tokens < 1000) {
		b->tokens_milli = tokens;
		return 0;
	}
	b->tokens_milli = tokens - 1000;
	return 1;
}

/* Whether the cube's rate (@cfg) lets one more packet go to its controller. */
static __always_inline int nc_pkt_admit(struct nc_cube_cfg *cfg)
{
	struct nc_pkt_bucket *b;
	__u32 zero = 0;

	if (!cfg->pkt_rate)
		return 1;
	b = bpf_map_lookup_elem(&nc_pkt_bucket, &zero);
	return b && nc_bucket_take(b, cfg->pkt_rate, cfg->pkt_burst);
}

/* Records come in two sizes: the ring hands out room of a size known when the
 * program is verified, and most slow-path packets (ARP, a TCP handshake, ICMP) are
 * short. A short packet's record is a twelfth of a full one: the ring holds that
 * many more, and the daemon copies that much less.
 */
#define NC_PKT_SHORT 128
#define NC_PKT_REC_HDR __builtin_offsetof(struct nc_pkt_rec, data)

/* Fills what every packet record says of its packet: at most @limit of its @len
 * bytes, within the @room @r was reserved with, its cube, in-port and hook. The
 * caller sets reason, user words and timestamp, and submits it. */
static __always_inline void nc_pkt_fill(struct nc_ctx *ctx, struct nc_md *md, struct nc_pkt_rec *r, __u64 len,
					__u64 limit, __u64 room)
{
	__u64 cap = len < limit ? len : limit; /* 64-bit, so the bound checked is the bound passed */

	/* Opaque to the compiler, which would otherwise fold the bound into the
	 * caller's test of @len, on another register: the verifier must see it here.
	 */
	asm volatile("" : "+r"(cap));
	if (cap > room)
		cap = room;
	if (cap < 1 || nc_load_bytes(ctx, 0, r->data, cap))
		cap = 0;
	r->cap_len = cap;
	r->wire_len = len;
	r->cube_id = nc_cube_id;
	r->in_port = md->in_port;
	r->hook = NC_HOOK_ID;
	r->pad = 0;
}

/* Fills @r, reserved with room for @room bytes of packet, and submits it. */
static __always_inline void nc_pkt_submit(struct nc_ctx *ctx, struct nc_md *md, struct nc_pkt_rec *r, __u16 reason,
					  __u64 len, __u64 room)
{
	nc_pkt_fill(ctx, md, r, len, room, room);
	r->reason = reason;
	r->user[0] = md->user[0];
	r->user[1] = md->user[1];
	r->user[2] = md->user[2];
	r->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, 0);
}

static __always_inline int nc_to_controller(struct nc_ctx *ctx, struct nc_md *md, __u16 reason)
{
	struct nc_port_stats *s = nc_port_stats(md, md->in_port);
	struct nc_cube_cfg *cfg = nc_cube_cfg();
	struct nc_pkt_rec *r;
	__u64 len;

	/* Held: its controller has no room; the daemon would only count the drop. */
	if (cfg && cfg->pkt_held) {
		nc_count_error(NC_ERR_PKT_HELD);
		return nc_drop(ctx, md);
	}
	if (cfg && !nc_pkt_admit(cfg)) {
		nc_count_error(NC_ERR_PKT_RATE);
		return nc_drop(ctx, md);
	}
	len = nc_pkt_len(ctx);
	if (len <= NC_PKT_SHORT) {
		r = bpf_ringbuf_reserve(&nc_pkt_rb, NC_PKT_REC_HDR + NC_PKT_SHORT, 0);
		if (r)
			nc_pkt_submit(ctx, md, r, reason, len, NC_PKT_SHORT);
	} else {
		r = bpf_ringbuf_reserve(&nc_pkt_rb, sizeof(*r), 0);
		if (r)
			nc_pkt_submit(ctx, md, r, reason, len, NC_PKT_MAX);
	}
	if (!r) {
		nc_count_error(NC_ERR_PKT_FULL);
		return nc_drop(ctx, md);
	}
	if (s)
		s->to_controller++;
	return NC_ACT_DROP;
}

#endif /* __NETCUBE_SLOWPATH_H */
