/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* A packet's flow: its addresses, protocol and ports, from Ethernet to L4, in one
 * parse shared by connection tracking, the firewall, NAT and the load balancer.
 *
 * Both families use one layout: an IPv4 address is kept IPv4-mapped
 * (::ffff:a.b.c.d) in an nc_ipv6_t, so keys built from a flow have one size and
 * one hash for both, and tables show them as "::ffff:10.0.0.1". ICMP echo
 * requests and replies carry their identifier in both ports, which is what
 * makes a request and its reply the same flow; other ICMP messages have none.
 */
#ifndef __NETCUBE_FLOW_H
#define __NETCUBE_FLOW_H

#include "fields.h"
#include "parsing.h"

enum nc_family {
	NC_FAMILY_IPV4 = 4,
	NC_FAMILY_IPV6 = 6,
};

#define NC_IPPROTO_HOPOPTS  0
#define NC_IPPROTO_ROUTING  43
#define NC_IPPROTO_FRAGMENT 44
#define NC_IPPROTO_AH       51
#define NC_IPPROTO_DSTOPTS  60

#define NC_TCP_FIN 0x01
#define NC_TCP_SYN 0x02
#define NC_TCP_RST 0x04
#define NC_TCP_PSH 0x08
#define NC_TCP_ACK 0x10

#define NC_ICMP_ECHO_REPLY      0
#define NC_ICMP_DEST_UNREACH    3
#define NC_ICMP_ECHO_REQUEST    8
#define NC_ICMP_TIME_EXCEEDED   11
#define NC_ICMP_PARAMETER_PROB  12
#define NC_ICMPV6_DEST_UNREACH  1
#define NC_ICMPV6_PKT_TOOBIG    2
#define NC_ICMPV6_TIME_EXCEED   3
#define NC_ICMPV6_PARAM_PROB    4
#define NC_ICMPV6_ECHO_REQUEST  128
#define NC_ICMPV6_ECHO_REPLY    129

/* IPv6 extension headers stepped over to reach the upper layer. */
#define NC_FLOW_IPV6_EXTS 4

struct nc_flow {
	nc_ipv6_t saddr;
	nc_ipv6_t daddr;
	nc_port_t sport;  /* TCP/UDP port; ICMP echo identifier; else 0 */
	nc_port_t dport;
	__u8 proto;       /* the upper-layer protocol */
	__u8 family;      /* enum nc_family */
	__u8 tcp_flags;   /* TCP: FIN..CWR; else 0 */
	__u8 icmp_type;   /* ICMP/ICMPv6: type and code; else 0 */
	__u8 icmp_code;
	__u8 fragment;    /* a fragment after the first: no L4 header, ports 0 */
	__u16 l3_off;     /* the IP header, from the start of the frame */
	__u16 l4_off;     /* the L4 header (where it would be, for a fragment) */
	__u16 pad;
};

enum nc_flow_parse {
	NC_FLOW_MALFORMED = -1, /* IP, but a header is cut short or says nonsense */
	NC_FLOW_IP        = 0,
	NC_FLOW_NOT_IP    = 1,  /* ARP and the rest: no flow */
};

static __always_inline int nc_flow_is_icmp(const struct nc_flow *f)
{
	return f->proto == (f->family == NC_FAMILY_IPV4 ? NC_IPPROTO_ICMP : NC_IPPROTO_ICMPV6);
}

static __always_inline int nc_icmp_is_echo(__u8 family, __u8 type)
{
	if (family == NC_FAMILY_IPV4)
		return type == NC_ICMP_ECHO_REQUEST || type == NC_ICMP_ECHO_REPLY;
	return type == NC_ICMPV6_ECHO_REQUEST || type == NC_ICMPV6_ECHO_REPLY;
}

static __always_inline int nc_icmp_is_error(__u8 family, __u8 type)
{
	if (family == NC_FAMILY_IPV4)
		return type == NC_ICMP_DEST_UNREACH || type == NC_ICMP_TIME_EXCEEDED || type == NC_ICMP_PARAMETER_PROB;
	return type >= NC_ICMPV6_DEST_UNREACH && type <= NC_ICMPV6_PARAM_PROB;
}

static __always_inline void nc_ipv4_mapped(nc_ipv6_t *a, __be32 v4)
{
	a->word[0] = 0;
	a->word[1] = 0;
	a->word[2] = bpf_htonl(0xffff);
	a->word[3] = v4;
}

/* The IP header at the cursor, whose family the caller knows: addresses and
 * protocol into @f, the cursor past it and past IPv6 extension headers.
 */
static __always_inline int nc_flow_parse_ip(struct nc_cursor *c, __u8 family, struct nc_flow *f)
{
	if (family == NC_FAMILY_IPV4) {
		struct iphdr *ip;
		int proto = nc_parse_ipv4(c, &ip);

		if (proto < 0 || ip->version != 4)
			return NC_FLOW_MALFORMED;
		nc_ipv4_mapped(&f->saddr, ip->saddr);
		nc_ipv4_mapped(&f->daddr, ip->daddr);
		f->proto = proto;
		f->fragment = (ip->frag_off & bpf_htons(0x1fff)) != 0;
		return NC_FLOW_IP;
	}
	struct ipv6hdr *ip6;
	int next = nc_parse_ipv6(c, &ip6);

	if (next < 0 || ip6->version != 6)
		return NC_FLOW_MALFORMED;
	__builtin_memcpy(&f->saddr, &ip6->saddr, sizeof(f->saddr));
	__builtin_memcpy(&f->daddr, &ip6->daddr, sizeof(f->daddr));
#pragma unroll
	for (int i = 0; i < NC_FLOW_IPV6_EXTS; i++) {
		__u8 *h = c->pos;

		if (next != NC_IPPROTO_HOPOPTS && next != NC_IPPROTO_ROUTING && next != NC_IPPROTO_DSTOPTS &&
		    next != NC_IPPROTO_FRAGMENT && next != NC_IPPROTO_AH)
			break;
		if ((void *)(h + 8) > c->end)
			return NC_FLOW_MALFORMED;
		if (next == NC_IPPROTO_FRAGMENT) {
			/* offset in the upper 13 bits of bytes 2..3 */
			f->fragment = (*(__be16 *)(h + 2) & bpf_htons(0xfff8)) != 0;
			c->pos = h + 8;
		} else if (next == NC_IPPROTO_AH) {
			c->pos = h + ((__u32)h[1] + 2) * 4;
		} else {
			c->pos = h + ((__u32)h[1] + 1) * 8;
		}
		next = h[0];
	}
	f->proto = next;
	return NC_FLOW_IP;
}

/* The L4 header at the cursor: ports, TCP flags, ICMP type. @quoted: the header
 * is the part an ICMP error quotes, of which only 8 bytes are there for sure.
 */
static __always_inline int nc_flow_parse_l4(struct nc_cursor *c, struct nc_flow *f, int quoted)
{
	__u8 *h = c->pos;

	if (f->fragment)
		return NC_FLOW_IP;
	switch (f->proto) {
	case NC_IPPROTO_TCP:
		if (quoted) {
			if ((void *)(h + 8) > c->end)
				return NC_FLOW_MALFORMED;
		} else {
			struct tcphdr *tcp;

			if (nc_parse_tcp(c, &tcp) < 0)
				return NC_FLOW_MALFORMED;
			f->tcp_flags = h[13];
		}
		f->sport = *(__be16 *)h;
		f->dport = *(__be16 *)(h + 2);
		return NC_FLOW_IP;
	case NC_IPPROTO_UDP:
		if ((void *)(h + 8) > c->end)
			return NC_FLOW_MALFORMED;
		f->sport = *(__be16 *)h;
		f->dport = *(__be16 *)(h + 2);
		return NC_FLOW_IP;
	case NC_IPPROTO_ICMP:
	case NC_IPPROTO_ICMPV6:
		if (!nc_flow_is_icmp(f))
			return NC_FLOW_IP;
		if ((void *)(h + 8) > c->end)
			return NC_FLOW_MALFORMED;
		f->icmp_type = h[0];
		f->icmp_code = h[1];
		if (nc_icmp_is_echo(f->family, h[0])) {
			f->sport = *(__be16 *)(h + 4);
			f->dport = f->sport;
		}
		return NC_FLOW_IP;
	}
	return NC_FLOW_IP;
}

/* Parses the frame of @ctx into @f (zeroed first). */
static __always_inline int nc_flow_parse(struct nc_ctx *ctx, struct nc_flow *f)
{
	struct nc_cursor c;
	struct ethhdr *eth;
	__u16 vlan;
	void *data;
	int proto, ret;

	__builtin_memset(f, 0, sizeof(*f));
	/* Read the frame's bounds afresh: clang would otherwise merge these loads
	 * with the entry's (the rx byte count) into a load at a computed offset of
	 * ctx, which the verifier refuses.
	 */
	asm volatile("" ::: "memory");
	nc_cursor_init(&c, ctx);
	data = c.pos;
	proto = nc_parse_eth(&c, &eth, &vlan);
	if (proto == NC_ETH_P_IP)
		f->family = NC_FAMILY_IPV4;
	else if (proto == NC_ETH_P_IPV6)
		f->family = NC_FAMILY_IPV6;
	else
		return proto < 0 ? NC_FLOW_MALFORMED : NC_FLOW_NOT_IP;
	f->l3_off = c.pos - data;
	ret = nc_flow_parse_ip(&c, f->family, f);
	if (ret != NC_FLOW_IP)
		return ret;
	f->l4_off = c.pos - data;
	return nc_flow_parse_l4(&c, f, 0);
}

/* The flow an ICMP error in @f quotes (the packet that caused it, as it was sent),
 * into @inner. Its l3_off and l4_off are those of the quoted headers in the frame.
 */
static __always_inline int nc_flow_parse_quoted(struct nc_ctx *ctx, const struct nc_flow *f, struct nc_flow *inner)
{
	struct nc_cursor c;
	void *data;
	int ret;

	__builtin_memset(inner, 0, sizeof(*inner));
	nc_cursor_init(&c, ctx);
	data = c.pos;
	/* The quoted packet follows the 8 bytes of the ICMP header. */
	if (f->l4_off > 1024)
		return NC_FLOW_MALFORMED;
	c.pos = data + f->l4_off + 8;
	inner->family = f->family;
	inner->l3_off = f->l4_off + 8;
	ret = nc_flow_parse_ip(&c, f->family, inner);
	if (ret != NC_FLOW_IP)
		return ret;
	inner->l4_off = c.pos - data;
	return nc_flow_parse_l4(&c, inner, 1);
}

#endif /* __NETCUBE_FLOW_H */
