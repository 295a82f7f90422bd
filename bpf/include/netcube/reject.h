/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* nc_reject(ctx, flow): turn a packet into the answer that refuses it, in place
 * and addressed back to its sender: a TCP reset for TCP (RFC 9293 3.10.7.1), an
 * ICMP (ICMPv6) port unreachable quoting it for anything else. The cube then
 * sends it back the way it came (nc_redirect to md->in_port).
 *
 * The frame is resized: cut to a bare TCP header, or grown between the Ethernet
 * and the IP header for the ICMP headers and cut after the quote (the refused
 * packet's IP header and the 8 bytes after it). Only untagged packets whose IP
 * header has no options (IPv4) or extension headers (IPv6) are answered; for the
 * others, and never for a reset, it returns -1 and the caller drops the packet.
 *
 * Headers are built from this file's own structs: vmlinux.h's carry CO-RE
 * relocations, which bitfield writes (version, doff) cannot have.
 */
#ifndef __NETCUBE_REJECT_H
#define __NETCUBE_REJECT_H

#include "rewrite.h"

#define NC_ICMP_PORT_UNREACH   3 /* code of ICMP destination unreachable */
#define NC_ICMPV6_PORT_UNREACH 4 /* code of ICMPv6 destination unreachable */
#define NC_ETH_HLEN            14

struct nc_eth_hdr {
	__u8 dst[NC_ETH_ALEN];
	__u8 src[NC_ETH_ALEN];
	__be16 proto;
};

struct nc_ip4_hdr {
	__u8 version_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct nc_ip6_hdr {
	__be32 version_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	nc_ipv6_t saddr;
	nc_ipv6_t daddr;
};

struct nc_tcp_hdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff;      /* data offset in the upper 4 bits */
	__u8 flags;
	__be16 window;
	__u16 check;
	__be16 urg_ptr;
};

/* The frame's length, computed where it is read: clang would otherwise fold the
 * subtraction of data from data_end into later arithmetic, and the verifier
 * allows none on data_end.
 */
static __always_inline __u32 nc_frame_len(struct nc_ctx *ctx)
{
	__u32 len = nc_pkt_len(ctx);

	asm volatile("" : "+r"(len));
	return len;
}

#ifdef NC_HOOK_XDP
static __always_inline long nc_frame_resize(struct xdp_md *ctx, __u32 len)
{
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)nc_frame_len(ctx));
}

/* @bytes more in front of the IP header; the Ethernet header is written afresh. */
static __always_inline long nc_frame_grow_l3(struct xdp_md *ctx, __u32 bytes)
{
	return bpf_xdp_adjust_head(ctx, -(int)bytes);
}
#else
static __always_inline long nc_frame_resize(struct __sk_buff *ctx, __u32 len)
{
	return bpf_skb_change_tail(ctx, len, 0);
}

static __always_inline long nc_frame_grow_l3(struct __sk_buff *ctx, __u32 bytes)
{
	return bpf_skb_adjust_room(ctx, bytes, BPF_ADJ_ROOM_MAC, 0);
}
#endif

/* A 64-bit accumulation of 16-bit words, folded and complemented: a checksum. */
static __always_inline __u16 nc_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* The pseudo-header of a packet from @src to @dst carrying @len bytes of @proto,
 * summed into 32 bits (the seed bpf_csum_diff adds the L4 bytes to). In memory
 * order either family's pseudo-header sums to the addresses' words plus the
 * protocol and the length as these big-endian values.
 */
static __always_inline __u32 nc_pseudo_sum(__u8 family, const nc_ipv6_t *src, const nc_ipv6_t *dst, __u8 proto, __u32 len)
{
	__u64 s = (__u64)bpf_htons((__u16)proto) + bpf_htonl(len);

	if (family == NC_FAMILY_IPV4) {
		s += (__u64)src->word[3] + dst->word[3];
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			s += (__u64)src->word[i] + dst->word[i];
	}
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return s;
}

/* Ethernet and IP headers from @f's destination back to its source, carrying
 * @payload bytes of @proto.
 */
static __always_inline int nc_reject_headers(struct nc_ctx *ctx, const struct nc_flow *f, const struct nc_eth_hdr *got,
					     __u8 proto, __u32 payload)
{
	struct nc_eth_hdr eth;

	__builtin_memcpy(eth.dst, got->src, NC_ETH_ALEN);
	__builtin_memcpy(eth.src, got->dst, NC_ETH_ALEN);
	eth.proto = got->proto;
	if (nc_store_bytes(ctx, 0, &eth, sizeof(eth)))
		return -1;
	if (f->family == NC_FAMILY_IPV4) {
		struct nc_ip4_hdr ip = {};

		ip.version_ihl = 0x45;
		ip.tot_len = bpf_htons(sizeof(ip) + payload);
		ip.ttl = 64;
		ip.protocol = proto;
		ip.saddr = f->daddr.word[3];
		ip.daddr = f->saddr.word[3];
		ip.check = nc_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0));
		return nc_store_bytes(ctx, NC_ETH_HLEN, &ip, sizeof(ip));
	}
	struct nc_ip6_hdr ip6 = {};

	ip6.version_flow = bpf_htonl(6 << 28);
	ip6.payload_len = bpf_htons(payload);
	ip6.nexthdr = proto;
	ip6.hop_limit = 64;
	ip6.saddr = f->daddr;
	ip6.daddr = f->saddr;
	return nc_store_bytes(ctx, NC_ETH_HLEN, &ip6, sizeof(ip6));
}

static __always_inline int nc_reject_tcp(struct nc_ctx *ctx, const struct nc_flow *f, const struct nc_eth_hdr *eth)
{
	__u32 hdr = f->family == NC_FAMILY_IPV4 ? 20 : 40, ip_len, seg, doff;
	struct nc_tcp_hdr in, out = {};
	__be16 len;

	if (nc_load_bytes(ctx, f->l4_off, &in, sizeof(in)) || (in.flags & NC_TCP_RST))
		return -1;
	/* The segment's length, from the IP header's length field. */
	if (nc_load_bytes(ctx, f->l3_off + (f->family == NC_FAMILY_IPV4 ? 2 : 4), &len, 2))
		return -1;
	ip_len = bpf_ntohs(len) + (f->family == NC_FAMILY_IPV4 ? 0 : 40);
	doff = (in.doff >> 4) * 4;
	if (ip_len < hdr + doff)
		return -1;
	seg = ip_len - hdr - doff + !!(in.flags & NC_TCP_SYN) + !!(in.flags & NC_TCP_FIN);
	out.source = in.dest;
	out.dest = in.source;
	out.doff = 5 << 4;
	if (in.flags & NC_TCP_ACK) {
		out.seq = in.ack_seq;
		out.flags = NC_TCP_RST;
	} else {
		out.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + seg);
		out.flags = NC_TCP_RST | NC_TCP_ACK;
	}
	out.check = nc_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&out, sizeof(out),
					       nc_pseudo_sum(f->family, &f->daddr, &f->saddr, NC_IPPROTO_TCP, sizeof(out))));
	if (nc_frame_resize(ctx, NC_ETH_HLEN + hdr + sizeof(out)) ||
	    nc_reject_headers(ctx, f, eth, NC_IPPROTO_TCP, sizeof(out)) ||
	    nc_store_bytes(ctx, NC_ETH_HLEN + hdr, &out, sizeof(out)))
		return -1;
	return 0;
}

static __always_inline int nc_reject_icmp4(struct nc_ctx *ctx, const struct nc_flow *f, const struct nc_eth_hdr *eth)
{
	__u8 msg[8 + 28] = { NC_ICMP_DEST_UNREACH, NC_ICMP_PORT_UNREACH };
	__u16 check;

	if (nc_frame_len(ctx) < NC_ETH_HLEN + 28 || nc_load_bytes(ctx, NC_ETH_HLEN, msg + 8, 28))
		return -1;
	check = nc_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)msg, sizeof(msg), 0));
	__builtin_memcpy(msg + 2, &check, 2);
	if (nc_frame_grow_l3(ctx, 28) || nc_frame_resize(ctx, NC_ETH_HLEN + 20 + sizeof(msg)) ||
	    nc_reject_headers(ctx, f, eth, NC_IPPROTO_ICMP, sizeof(msg)) || nc_store_bytes(ctx, NC_ETH_HLEN + 20, msg, sizeof(msg)))
		return -1;
	return 0;
}

static __always_inline int nc_reject_icmp6(struct nc_ctx *ctx, const struct nc_flow *f, const struct nc_eth_hdr *eth)
{
	__u8 msg[8 + 48] = { NC_ICMPV6_DEST_UNREACH, NC_ICMPV6_PORT_UNREACH };
	__u16 check;

	if (nc_frame_len(ctx) < NC_ETH_HLEN + 48 || nc_load_bytes(ctx, NC_ETH_HLEN, msg + 8, 48))
		return -1;
	check = nc_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)msg, sizeof(msg),
					   nc_pseudo_sum(f->family, &f->daddr, &f->saddr, NC_IPPROTO_ICMPV6, sizeof(msg))));
	__builtin_memcpy(msg + 2, &check, 2);
	if (nc_frame_grow_l3(ctx, 48) || nc_frame_resize(ctx, NC_ETH_HLEN + 40 + sizeof(msg)) ||
	    nc_reject_headers(ctx, f, eth, NC_IPPROTO_ICMPV6, sizeof(msg)) || nc_store_bytes(ctx, NC_ETH_HLEN + 40, msg, sizeof(msg)))
		return -1;
	return 0;
}

/* Turns the packet of @f into its refusal; 0 when it is one, -1 to drop it. */
static __always_inline int nc_reject(struct nc_ctx *ctx, const struct nc_flow *f)
{
	struct nc_eth_hdr eth;

	if (f->l3_off != NC_ETH_HLEN || f->fragment || f->l4_off != NC_ETH_HLEN + (f->family == NC_FAMILY_IPV4 ? 20 : 40))
		return -1;
	if (nc_load_bytes(ctx, 0, &eth, sizeof(eth)))
		return -1;
	if (f->proto == NC_IPPROTO_TCP)
		return nc_reject_tcp(ctx, f, &eth);
	if (nc_flow_is_icmp(f) && nc_icmp_is_error(f->family, f->icmp_type))
		return -1; /* never an error about an error */
	return f->family == NC_FAMILY_IPV4 ? nc_reject_icmp4(ctx, f, &eth) : nc_reject_icmp6(ctx, f, &eth);
}

#endif /* __NETCUBE_REJECT_H */
