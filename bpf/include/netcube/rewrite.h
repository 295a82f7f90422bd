/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Rewriting a packet's addresses and ports with their checksums patched
 * incrementally (RFC 1624), in both hooks: NAT and the load balancer use it.
 *
 * Everything works on offsets from the start of the frame (struct nc_flow has
 * them). Under TC the kernel's helpers patch the checksums: they know how the skb
 * holds its checksum. A packet a local socket sent (a pod's, over a veth) is
 * CHECKSUM_PARTIAL: its L4 checksum field holds only the pseudo-header's sum,
 * which an address change must patch the other way, and a port change must not
 * touch at all. Under XDP there is no skb, the checksum is the packet's own, and
 * the arithmetic is done here (frames from local sockets need checksum offload
 * off, as the README says of XDP mode).
 */
#ifndef __NETCUBE_REWRITE_H
#define __NETCUBE_REWRITE_H

#include "flow.h"

/* How a checksum covers the field that changes. */
enum nc_csum_flags {
	NC_CSUM_PSEUDO = 0x1, /* the field is in the L4 pseudo-header (an address) */
	NC_CSUM_UDP    = 0x2, /* a UDP checksum: 0 means none (IPv4), a 0 result is sent as 0xffff */
};

/* A checksum @sum (as it lies in the packet) once the 16-bit words of @from
 * become those of @to (@size 2 or 4, as they lie in the packet): RFC 1624,
 * HC' = ~(~HC + ~m + m').
 */
static __always_inline __u16 nc_csum_replace(__u16 sum, __u32 from, __u32 to, __u32 size)
{
	__u32 s = (__u16)~sum;

	s += (__u16)~from;
	s += (__u16)to;
	if (size == 4) {
		s += (__u16)~(from >> 16);
		s += (__u16)(to >> 16);
	}
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

#ifdef NC_HOOK_XDP
static __always_inline long nc_store_bytes(struct xdp_md *ctx, __u32 off, const void *from, __u32 len)
{
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
}

static __always_inline long nc_csum_patch(struct xdp_md *ctx, __u32 csum_off, __u32 from, __u32 to, __u32 size, __u32 flags)
{
	__u16 sum;

	if (bpf_xdp_load_bytes(ctx, csum_off, &sum, 2))
		return -1;
	if ((flags & NC_CSUM_UDP) && !sum)
		return 0;
	sum = nc_csum_replace(sum, from, to, size);
	if ((flags & NC_CSUM_UDP) && !sum)
		sum = 0xffff;
	return bpf_xdp_store_bytes(ctx, csum_off, &sum, 2);
}

/* The IPv4 header checksum at @csum_off, for a change of @from to @to. */
static __always_inline long nc_l3_csum(struct xdp_md *ctx, __u32 csum_off, __u32 from, __u32 to, __u32 size)
{
	return nc_csum_patch(ctx, csum_off, from, to, size, 0);
}

/* The L4 checksum at @csum_off, for a change of @from to @to (NC_CSUM_* @flags). */
static __always_inline long nc_l4_csum(struct xdp_md *ctx, __u32 csum_off, __u32 from, __u32 to, __u32 size, __u32 flags)
{
	return nc_csum_patch(ctx, csum_off, from, to, size, flags);
}
#else
static __always_inline long nc_store_bytes(struct __sk_buff *ctx, __u32 off, const void *from, __u32 len)
{
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
}

/* BPF_F_* of linux/bpf.h, which vmlinux.h cannot carry. */
#define NC_BPF_F_PSEUDO_HDR      (1ULL << 4)
#define NC_BPF_F_MARK_MANGLED_0  (1ULL << 5)

static __always_inline long nc_l3_csum(struct __sk_buff *ctx, __u32 csum_off, __u32 from, __u32 to, __u32 size)
{
	return bpf_l3_csum_replace(ctx, csum_off, from, to, size);
}

static __always_inline long nc_l4_csum(struct __sk_buff *ctx, __u32 csum_off, __u32 from, __u32 to, __u32 size, __u32 flags)
{
	__u64 f = size;

	if (flags & NC_CSUM_PSEUDO)
		f |= NC_BPF_F_PSEUDO_HDR;
	if (flags & NC_CSUM_UDP)
		f |= NC_BPF_F_MARK_MANGLED_0;
	return bpf_l4_csum_replace(ctx, csum_off, from, to, f);
}
#endif

/* Where a flow's L4 checksum is (-1: it has none NAT can patch) and how it covers addresses. */
static __always_inline int nc_l4_csum_at(const struct nc_flow *f, __u32 *off, __u32 *flags)
{
	switch (f->proto) {
	case NC_IPPROTO_TCP:
		*off = f->l4_off + 16;
		*flags = NC_CSUM_PSEUDO;
		return 0;
	case NC_IPPROTO_UDP:
		*off = f->l4_off + 6;
		*flags = NC_CSUM_PSEUDO | (f->family == NC_FAMILY_IPV4 ? NC_CSUM_UDP : 0);
		return 0;
	case NC_IPPROTO_ICMP:
		*off = f->l4_off + 2;
		*flags = 0; /* ICMP has no pseudo-header */
		return 0;
	case NC_IPPROTO_ICMPV6:
		*off = f->l4_off + 2;
		*flags = NC_CSUM_PSEUDO;
		return 0;
	}
	return -1;
}

/* Replaces the source (@dst 0) or destination (@dst 1) address of @f's packet
 * with @to, patching the IPv4 header checksum and the L4 one. @f is updated.
 */
static __always_inline int nc_rewrite_addr(struct nc_ctx *ctx, struct nc_flow *f, int dst, const nc_ipv6_t *to)
{
	nc_ipv6_t *old = dst ? &f->daddr : &f->saddr;
	__u32 csum_off = 0, csum_flags = 0;
	int has_l4 = !f->fragment && nc_l4_csum_at(f, &csum_off, &csum_flags) == 0;

	if (f->family == NC_FAMILY_IPV4) {
		__u32 off = f->l3_off + (dst ? 16 : 12);

		if (nc_l3_csum(ctx, f->l3_off + 10, old->word[3], to->word[3], 4))
			return -1;
		if (has_l4 && (csum_flags & NC_CSUM_PSEUDO) && nc_l4_csum(ctx, csum_off, old->word[3], to->word[3], 4, csum_flags))
			return -1;
		if (nc_store_bytes(ctx, off, &to->word[3], 4))
			return -1;
	} else {
		__u32 off = f->l3_off + (dst ? 24 : 8);

#pragma unroll
		for (int i = 0; i < 4; i++)
			if (has_l4 && nc_l4_csum(ctx, csum_off, old->word[i], to->word[i], 4, csum_flags))
				return -1;
		if (nc_store_bytes(ctx, off, to, 16))
			return -1;
	}
	*old = *to;
	return 0;
}

/* Replaces the source (@dst 0) or destination (@dst 1) port of @f's packet with
 * @to, or its ICMP echo identifier (either way), patching the L4 checksum.
 */
static __always_inline int nc_rewrite_port(struct nc_ctx *ctx, struct nc_flow *f, int dst, nc_port_t to)
{
	__u32 csum_off = 0, csum_flags = 0, off;
	nc_port_t old;

	if (f->fragment || nc_l4_csum_at(f, &csum_off, &csum_flags))
		return 0;
	if (nc_flow_is_icmp(f)) {
		off = f->l4_off + 4;
		old = f->sport;
	} else if (f->proto == NC_IPPROTO_TCP || f->proto == NC_IPPROTO_UDP) {
		off = f->l4_off + (dst ? 2 : 0);
		old = dst ? f->dport : f->sport;
	} else {
		return 0;
	}
	if (old == to)
		return 0;
	if (nc_l4_csum(ctx, csum_off, old, to, 2, csum_flags & NC_CSUM_UDP))
		return -1;
	if (nc_store_bytes(ctx, off, &to, 2))
		return -1;
	if (nc_flow_is_icmp(f))
		f->sport = f->dport = to;
	else if (dst)
		f->dport = to;
	else
		f->sport = to;
	return 0;
}

#endif /* __NETCUBE_REWRITE_H */
