/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Packet parsing over a cursor. Each parser checks its own bounds against the
 * end of the packet, advances the cursor past its header and returns the next
 * protocol (host order), or -1 when the header is not all there or is malformed.
 */
#ifndef __NETCUBE_PARSING_H
#define __NETCUBE_PARSING_H

#include "hook.h"

#define NC_ETH_P_IP     0x0800
#define NC_ETH_P_ARP    0x0806
#define NC_ETH_P_8021Q  0x8100
#define NC_ETH_P_8021AD 0x88A8
#define NC_ETH_P_IPV6   0x86DD
#define NC_ETH_ALEN     6

#define NC_IPPROTO_ICMP   1
#define NC_IPPROTO_TCP    6
#define NC_IPPROTO_UDP    17
#define NC_IPPROTO_ICMPV6 58

struct nc_cursor {
	void *pos;
	void *end;
};

struct nc_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void nc_cursor_init(struct nc_cursor *c, struct nc_ctx *ctx)
{
	c->pos = nc_data(ctx);
	c->end = nc_data_end(ctx);
}

/* Ethernet, with at most one 802.1Q/802.1ad tag; *vlan is its VLAN id or 0. */
static __always_inline int nc_parse_eth(struct nc_cursor *c, struct ethhdr **eth, __u16 *vlan)
{
	struct ethhdr *e = c->pos;
	__u16 proto;

	if ((void *)(e + 1) > c->end)
		return -1;
	c->pos = e + 1;
	*eth = e;
	*vlan = 0;
	proto = bpf_ntohs(e->h_proto);
	if (proto == NC_ETH_P_8021Q || proto == NC_ETH_P_8021AD) {
		struct nc_vlan_hdr *v = c->pos;

		if ((void *)(v + 1) > c->end)
			return -1;
		c->pos = v + 1;
		*vlan = bpf_ntohs(v->tci) & 0x0fff;
		proto = bpf_ntohs(v->proto);
	}
	return proto;
}

static __always_inline int nc_parse_ipv4(struct nc_cursor *c, struct iphdr **ip)
{
	struct iphdr *h = c->pos;
	__u32 hdrlen;

	if ((void *)(h + 1) > c->end)
		return -1;
	hdrlen = h->ihl * 4;
	if (hdrlen < sizeof(*h) || c->pos + hdrlen > c->end)
		return -1;
	c->pos += hdrlen;
	*ip = h;
	return h->protocol;
}

/* The ARP payload for Ethernet and IPv4, after struct arphdr. */
struct nc_arp_ipv4 {
	__u8 sender_mac[NC_ETH_ALEN];
	__be32 sender_ip;
	__u8 target_mac[NC_ETH_ALEN];
	__be32 target_ip;
} __attribute__((packed));

/* ARP for Ethernet and IPv4 (the only ARP on these links): its payload, or NULL. */
static __always_inline struct nc_arp_ipv4 *nc_parse_arp_ipv4(struct nc_cursor *c)
{
	struct arphdr *h = c->pos;
	struct nc_arp_ipv4 *a = (void *)(h + 1);

	if ((void *)(a + 1) > c->end)
		return NULL;
	if (h->ar_hrd != bpf_htons(1) || h->ar_pro != bpf_htons(NC_ETH_P_IP) || h->ar_hln != NC_ETH_ALEN || h->ar_pln != 4)
		return NULL;
	c->pos = a + 1;
	return a;
}

/* Extension headers are not walked: the next header is returned as it is. */
static __always_inline int nc_parse_ipv6(struct nc_cursor *c, struct ipv6hdr **ip6)
{
	struct ipv6hdr *h = c->pos;

	if ((void *)(h + 1) > c->end)
		return -1;
	c->pos = h + 1;
	*ip6 = h;
	return h->nexthdr;
}

static __always_inline int nc_parse_udp(struct nc_cursor *c, struct udphdr **udp)
{
	struct udphdr *h = c->pos;

	if ((void *)(h + 1) > c->end)
		return -1;
	c->pos = h + 1;
	*udp = h;
	return 0;
}

static __always_inline int nc_parse_tcp(struct nc_cursor *c, struct tcphdr **tcp)
{
	struct tcphdr *h = c->pos;
	__u32 hdrlen;

	if ((void *)(h + 1) > c->end)
		return -1;
	hdrlen = h->doff * 4;
	if (hdrlen < sizeof(*h) || c->pos + hdrlen > c->end)
		return -1;
	c->pos += hdrlen;
	*tcp = h;
	return 0;
}

static __always_inline int nc_parse_icmp(struct nc_cursor *c, struct icmphdr **icmp)
{
	struct icmphdr *h = c->pos;

	if ((void *)(h + 1) > c->end)
		return -1;
	c->pos = h + 1;
	*icmp = h;
	return h->type;
}

/* Decrement the TTL and patch the header checksum incrementally (RFC 1624). */
static __always_inline void nc_ipv4_dec_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
}

/* BPF has no memcmp: compare the six bytes as a 4- and a 2-byte word. */
static __always_inline int nc_mac_equal(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline void nc_mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, NC_ETH_ALEN);
}

#endif /* __NETCUBE_PARSING_H */
