// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* ddosmitigator: a transparent cube that drops packets from blacklisted IPv4 and
 * IPv6 sources, and to blacklisted destinations, on their way in, and counts the
 * drops of every blacklist entry (a packet both from and to blacklisted addresses
 * counts on its source's). Packets going out are not looked at.
 */
#include <netcube/netcube.h>

/* Blacklisted IPv4 source -> packets dropped. */
NC_TABLE(blacklist_v4, BPF_MAP_TYPE_HASH, nc_ipv4_t, __u64, 65536, NC_SCOPE_CUBE);
/* Blacklisted IPv6 source -> packets dropped. */
NC_TABLE(blacklist_v6, BPF_MAP_TYPE_HASH, nc_ipv6_t, __u64, 65536, NC_SCOPE_CUBE);
/* Blacklisted IPv4 destination -> packets dropped. */
NC_TABLE(blacklist_dst_v4, BPF_MAP_TYPE_HASH, nc_ipv4_t, __u64, 65536, NC_SCOPE_CUBE);
/* Blacklisted IPv6 destination -> packets dropped. */
NC_TABLE(blacklist_dst_v6, BPF_MAP_TYPE_HASH, nc_ipv6_t, __u64, 65536, NC_SCOPE_CUBE);

static __always_inline __u64 *blacklisted(struct nc_ctx *ctx)
{
	struct nc_cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct ipv6hdr *ip6;
	__u16 vlan;
	__u64 *drops;

	nc_cursor_init(&c, ctx);
	switch (nc_parse_eth(&c, &eth, &vlan)) {
	case NC_ETH_P_IP:
		if (nc_parse_ipv4(&c, &ip) < 0)
			return NULL;
		drops = bpf_map_lookup_elem(&blacklist_v4, &ip->saddr);
		return drops ? drops : bpf_map_lookup_elem(&blacklist_dst_v4, &ip->daddr);
	case NC_ETH_P_IPV6:
		if (nc_parse_ipv6(&c, &ip6) < 0)
			return NULL;
		drops = bpf_map_lookup_elem(&blacklist_v6, &ip6->saddr);
		return drops ? drops : bpf_map_lookup_elem(&blacklist_dst_v6, &ip6->daddr);
	}
	return NULL;
}

static __always_inline int ddos(struct nc_ctx *ctx, struct nc_md *md)
{
	__u64 *drops;

	if (md->in_port == NC_DIR_INGRESS) {
		drops = blacklisted(ctx);
		if (drops) {
			__sync_fetch_and_add(drops, 1);
			return nc_drop(ctx, md);
		}
	}
	return nc_forward(ctx, md);
}

NC_TRANSPARENT_CUBE(ddos);
