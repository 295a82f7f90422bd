/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* One cube source, two hooks: the build compiles every cube twice, with
 * -DNC_HOOK_XDP and with -DNC_HOOK_TC. This header hides the difference: the
 * context type, the verdicts, packet bounds, byte loads and metadata storage.
 */
#ifndef __NETCUBE_HOOK_H
#define __NETCUBE_HOOK_H

#include "abi.h"

#if defined(NC_HOOK_XDP) == defined(NC_HOOK_TC)
#error "compile with exactly one of -DNC_HOOK_XDP or -DNC_HOOK_TC"
#endif

/* TC verdicts are #defines in linux/pkt_cls.h, which vmlinux.h cannot carry. */
#define NC_TC_ACT_OK       0
#define NC_TC_ACT_SHOT     2
#define NC_TC_ACT_REDIRECT 7

#ifdef NC_HOOK_XDP

#define nc_ctx         xdp_md
#define NC_SEC         "xdp"
#define NC_HOOK_ID     NC_HOOK_ID_XDP
#define NC_ACT_DROP    XDP_DROP
#define NC_ACT_PASS    XDP_PASS
#define NC_ACT_ABORTED XDP_ABORTED

/* Each field is read by a load of its own, at a constant offset from ctx itself:
 * clang may otherwise merge reads of different fields on two paths into one load
 * through ctx plus a computed offset, which the verifier refuses ("dereference of
 * modified ctx ptr"; the tutorial's macfilter hit it). Volatile, as a plain read
 * of ctx is: a helper (bpf_xdp_adjust_head) may have moved the packet since.
 */
#define NC_XDP_FIELD(ctx, field)							\
	({										\
		__u64 __v;								\
		asm volatile("%0 = *(u32 *)(%1 + %2)"					\
			     : "=r"(__v)						\
			     : "r"(ctx), "i"(__builtin_offsetof(struct xdp_md, field)));\
		__v;									\
	})
static __always_inline void *nc_data(struct xdp_md *ctx) { return (void *)(long)NC_XDP_FIELD(ctx, data); }
static __always_inline void *nc_data_end(struct xdp_md *ctx) { return (void *)(long)NC_XDP_FIELD(ctx, data_end); }
static __always_inline __u32 nc_pkt_len(struct xdp_md *ctx) { return NC_XDP_FIELD(ctx, data_end) - NC_XDP_FIELD(ctx, data); }
static __always_inline __u32 nc_ifindex(struct xdp_md *ctx) { return ctx->ingress_ifindex; }

static __always_inline long nc_load_bytes(struct xdp_md *ctx, __u32 off, void *to, __u32 len)
{
	return bpf_xdp_load_bytes(ctx, off, to, len);
}

/* Metadata lives in the XDP metadata area, right before the frame. Inside a chain
 * it is always exactly one struct nc_md: a frame enters netcube without one (or
 * with another XDP program's), and gets it when it first leaves a program for
 * the next (nc_md_store); a netdev entry fused with its cube keeps it on the
 * stack until then.
 *
 * It moves between programs as whole words (struct nc_md's layout,
 * little-endian), each loaded as the program before stored it, and the user words
 * only when they are not all 0 (NC_MD_F_USER): from one cube to the next they are,
 * and a hop then stores and loads one word. Every word less is about a nanosecond
 * less a hop here (bpf/testdata/tailchain's chain_metadata measures a hop's).
 */
#define NC_MD_HEAD   0  /* u64: in_port, cube_id, reason, flags */
#define NC_MD_USER01 8  /* u64: user[0], user[1] */
#define NC_MD_USER2  16 /* u32: user[2] */

static __always_inline int nc_md_load(struct xdp_md *ctx, struct nc_md *md)
{
	void *m = (void *)(long)ctx->data_meta;
	__u64 head, user01 = 0;
	__u32 user2 = 0;

	if (m + sizeof(*md) > (void *)(long)ctx->data)
		return -1;
	head = *(volatile __u64 *)(m + NC_MD_HEAD);
	if ((head >> 48) & NC_MD_F_USER) {
		user01 = *(volatile __u64 *)(m + NC_MD_USER01);
		user2 = *(volatile __u32 *)(m + NC_MD_USER2);
	}
	md->in_port = head;
	md->cube_id = head >> 16;
	md->reason = head >> 32;
	md->flags = (head >> 48) & ~NC_MD_F_USER;
	md->user[0] = user01;
	md->user[1] = user01 >> 32;
	md->user[2] = user2;
	return 0;
}

/* Sizes the metadata area to exactly one struct nc_md. A frame that another XDP
 * program redirected here may still carry that program's metadata (veth keeps
 * it), so size the area from what is there, not from zero.
 */
static __always_inline int nc_md_init(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *meta = (void *)(long)ctx->data_meta;
	int have;

	/* The kernel caps metadata at 32 bytes in steps of 4. */
#pragma unroll
	for (have = 0; have <= 32; have += 4) {
		if (meta + have == data) {
			if (have == sizeof(struct nc_md))
				return 0;
			return bpf_xdp_adjust_meta(ctx, have - (int)sizeof(struct nc_md));
		}
	}
	return -1;
}

/* Within a chain the area is already there: one compare. */
static __always_inline int nc_md_store(struct xdp_md *ctx, const struct nc_md *md)
{
	void *m = (void *)(long)ctx->data_meta;

	/* Two compares, not one !=: the verifier learns packet bounds from < and >. */
	if (m + sizeof(*md) > (void *)(long)ctx->data || m + sizeof(*md) < (void *)(long)ctx->data) {
		if (nc_md_init(ctx))
			return -1;
		/* A fresh ctx for clang, which would otherwise keep the addresses of
		 * the fields in registers: the verifier takes ctx fields only at a
		 * constant offset from ctx itself. */
		asm volatile("" : "+r"(ctx));
		m = (void *)(long)ctx->data_meta;
		if (m + sizeof(*md) > (void *)(long)ctx->data)
			return -1;
	}
	if (md->user[0] | md->user[1] | md->user[2]) {
		*(volatile __u64 *)(m + NC_MD_HEAD) = md->in_port | (__u32)md->cube_id << 16 | (__u64)md->reason << 32 |
						       (__u64)(md->flags | NC_MD_F_USER) << 48;
		*(volatile __u64 *)(m + NC_MD_USER01) = md->user[0] | (__u64)md->user[1] << 32;
		*(volatile __u32 *)(m + NC_MD_USER2) = md->user[2];
	} else {
		*(volatile __u64 *)(m + NC_MD_HEAD) = md->in_port | (__u32)md->cube_id << 16 | (__u64)md->reason << 32 |
						       (__u64)(md->flags & ~NC_MD_F_USER) << 48;
	}
	return 0;
}

/* Out of netdev @ifindex. @flags (NC_PEER_F_*) only matter under TC. */
static __always_inline int nc_redirect_netdev(struct xdp_md *ctx, __u32 ifindex, __u32 flags)
{
	return bpf_redirect(ifindex, 0);
}

#else /* NC_HOOK_TC */

#define nc_ctx         __sk_buff
#define NC_SEC         "tc"
#define NC_HOOK_ID     NC_HOOK_ID_TC
#define NC_ACT_DROP    NC_TC_ACT_SHOT
#define NC_ACT_PASS    NC_TC_ACT_OK
#define NC_ACT_ABORTED NC_TC_ACT_SHOT

static __always_inline void *nc_data(struct __sk_buff *ctx) { return (void *)(long)ctx->data; }
static __always_inline void *nc_data_end(struct __sk_buff *ctx) { return (void *)(long)ctx->data_end; }
static __always_inline __u32 nc_pkt_len(struct __sk_buff *ctx) { return ctx->len; }
static __always_inline __u32 nc_ifindex(struct __sk_buff *ctx) { return ctx->ifindex; }

static __always_inline long nc_load_bytes(struct __sk_buff *ctx, __u32 off, void *to, __u32 len)
{
	return bpf_skb_load_bytes(ctx, off, to, len);
}

/* Under TC the metadata rides in skb->cb[0..4], which the kernel keeps across
 * tail calls and which is exactly the size of struct nc_md.
 */
static __always_inline int nc_md_load(struct __sk_buff *ctx, struct nc_md *md)
{
	__u32 w0 = ctx->cb[0], w1 = ctx->cb[1];
	int user = (w1 >> 16) & NC_MD_F_USER;

	md->in_port = w0 & 0xffff;
	md->cube_id = w0 >> 16;
	md->reason = w1 & 0xffff;
	md->flags = (w1 >> 16) & ~NC_MD_F_USER;
	md->user[0] = user ? ctx->cb[2] : 0;
	md->user[1] = user ? ctx->cb[3] : 0;
	md->user[2] = user ? ctx->cb[4] : 0;
	return 0;
}

/* As under XDP, the user words only when they are not all 0 (NC_MD_F_USER). */
static __always_inline int nc_md_store(struct __sk_buff *ctx, const struct nc_md *md)
{
	ctx->cb[0] = md->in_port | (__u32)md->cube_id << 16;
	if (md->user[0] | md->user[1] | md->user[2]) {
		ctx->cb[1] = md->reason | (__u32)(md->flags | NC_MD_F_USER) << 16;
		ctx->cb[2] = md->user[0];
		ctx->cb[3] = md->user[1];
		ctx->cb[4] = md->user[2];
	} else {
		ctx->cb[1] = md->reason | (__u32)(md->flags & ~NC_MD_F_USER) << 16;
	}
	return 0;
}

/* Out of netdev @ifindex or, with NC_PEER_F_REDIRECT_PEER, straight into the
 * receive path of its peer in another namespace (see enum nc_peer_flag).
 */
static __always_inline int nc_redirect_netdev(struct __sk_buff *ctx, __u32 ifindex, __u32 flags)
{
	if (flags & NC_PEER_F_REDIRECT_PEER)
		return bpf_redirect_peer(ifindex, 0);
	return bpf_redirect(ifindex, 0);
}

#endif

#endif /* __NETCUBE_HOOK_H */
