// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* router: an IPv4 router. Each port is an interface with an address (and any
 * secondary ones) and a MAC;
 * routes are a longest-prefix-match table; the neighbour table maps next hops to
 * MACs. The fast path forwards: route, rewrite the MACs, decrement the TTL. What it
 * cannot do alone goes to the control plane, as in the ANCS'19 paper: ARP (requests
 * for the router's addresses, replies to its own requests), packets whose next hop
 * has no neighbour entry yet (the control plane resolves it and sends them on),
 * packets for the router's own addresses (ICMP echo) and packets whose TTL runs out
 * (ICMP time exceeded).
 */
#include <netcube/netcube.h>

enum router_reason {
	ROUTER_REASON_ARP       = 1, /* an ARP request or reply for the in-port's address */
	ROUTER_REASON_NO_NEIGH  = 2, /* next hop (md->user[0], network order) unresolved; out port in user[1] */
	ROUTER_REASON_LOCAL     = 3, /* addressed to the router itself */
	ROUTER_REASON_TTL       = 4, /* TTL would run out here */
};

/* A port's addresses: its primary one (router_ports) and at most seven secondary ones. */
#define ROUTER_ADDRS_PER_PORT 8

struct router_port {
	nc_ipv4_t addr;   /* primary; 0.0.0.0: the port has no address and takes no packets */
	__u32 prefixlen;
	nc_mac_t mac;
	__u16 pad;
};

struct route_key {
	__u32 prefixlen;
	nc_ipv4_t addr;
};

struct route_entry {
	nc_ipv4_t nexthop; /* 0.0.0.0: directly connected, the destination is the next hop */
	__u32 port;
};

struct neigh_entry {
	nc_mac_t mac;
	__u16 pad;
	__u32 port;
	__u64 seen_ns;
};

/* Port -> its interface address and MAC. */
NC_TABLE(router_ports, BPF_MAP_TYPE_ARRAY, __u32, struct router_port, NC_MAX_PORTS, NC_SCOPE_CUBE);
/* The router's own addresses, primary and secondary, -> their port. */
NC_TABLE(local_addrs, BPF_MAP_TYPE_HASH, nc_ipv4_t, __u32, NC_MAX_PORTS * ROUTER_ADDRS_PER_PORT, NC_SCOPE_CUBE);
/* Destination prefix -> next hop and port, longest prefix first. */
NC_TABLE_FLAGS(routes, BPF_MAP_TYPE_LPM_TRIE, struct route_key, struct route_entry, 1024, NC_SCOPE_CUBE, BPF_F_NO_PREALLOC);
/* Next-hop address -> MAC, as ARP resolved it. */
NC_TABLE(neighbours, BPF_MAP_TYPE_HASH, nc_ipv4_t, struct neigh_entry, 4096, NC_SCOPE_CUBE);

static __always_inline int is_broadcast(const __u8 *mac)
{
	return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

/* Only ARP about one of the in-port's own addresses (primary or secondary)
 * concerns the router: a request for it, or a reply to one of its own requests.
 * The rest of a segment's ARP (requests between hosts a bridge floods to every
 * port, gratuitous ARP) is not worth a trip to the control plane.
 */
static __always_inline int arp_for(struct nc_cursor *c, __u32 in_port)
{
	struct nc_arp_ipv4 *a = nc_parse_arp_ipv4(c);
	__u32 *owner;

	if (!a)
		return 0;
	owner = bpf_map_lookup_elem(&local_addrs, &a->target_ip);
	return owner && *owner == in_port;
}

static __always_inline int router(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 in = md->in_port, out_port;
	struct router_port *port, *out;
	struct neigh_entry *n;
	struct route_key key = { .prefixlen = 32 };
	struct route_entry *r;
	struct nc_cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	__be32 nexthop;
	__u16 vlan;
	int proto, bcast;

	port = bpf_map_lookup_elem(&router_ports, &in);
	if (!port || !port->addr)
		return nc_drop(ctx, md);
	nc_cursor_init(&c, ctx);
	proto = nc_parse_eth(&c, &eth, &vlan);
	/* The router's ports are untagged interfaces. */
	if (proto < 0 || vlan)
		return nc_drop(ctx, md);
	if (proto == NC_ETH_P_ARP)
		return arp_for(&c, in) ? nc_to_controller(ctx, md, ROUTER_REASON_ARP) : nc_drop(ctx, md);
	if (proto != NC_ETH_P_IP)
		return nc_drop(ctx, md);
	/* Only frames for this interface are routed; a link-layer broadcast may be for
	 * the router itself, but is never forwarded (RFC 1812 5.3.4).
	 */
	bcast = is_broadcast(eth->h_dest);
	if (!bcast && !nc_mac_equal(eth->h_dest, port->mac))
		return nc_drop(ctx, md);
	if (nc_parse_ipv4(&c, &ip) < 0)
		return nc_drop(ctx, md);
	if (bpf_map_lookup_elem(&local_addrs, &ip->daddr))
		return nc_to_controller(ctx, md, ROUTER_REASON_LOCAL);
	if (bcast)
		return nc_drop(ctx, md);

	key.addr = ip->daddr;
	r = bpf_map_lookup_elem(&routes, &key);
	if (!r)
		return nc_drop(ctx, md);
	if (ip->ttl <= 1)
		return nc_to_controller(ctx, md, ROUTER_REASON_TTL);
	out_port = r->port;
	nexthop = r->nexthop ? r->nexthop : ip->daddr;
	out = bpf_map_lookup_elem(&router_ports, &out_port);
	n = bpf_map_lookup_elem(&neighbours, &nexthop);
	if (!out || !out->addr)
		return nc_drop(ctx, md);
	if (!n) {
		md->user[0] = nexthop;
		md->user[1] = out_port;
		return nc_to_controller(ctx, md, ROUTER_REASON_NO_NEIGH);
	}
	nc_mac_copy(eth->h_source, out->mac);
	nc_mac_copy(eth->h_dest, n->mac);
	nc_ipv4_dec_ttl(ip);
	return nc_redirect(ctx, md, out_port);
}

NC_CUBE(router);
NC_DECREMENTS_TTL();
