// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* k8sdispatcher: a Kubernetes node's edge (polykube's "k8s dispatcher"), between
 * the node's uplink (the port linked to netdev:<uplink>, "ext") and its chain (the
 * port linked to the NodePort lbrp, "int"). remote-services/k8s/src/model/chains.ts
 * says what the chain expects of it:
 *
 * - From the chain: pods' packets to outside the cluster's range take the node's
 *   address and a port of the masquerade range (ICMP echo: an identifier); the
 *   answers of NodePort flows go back out, reverse-translated when their client
 *   was given the cluster SNAT address; ICMP errors about a translated flow are
 *   translated with their quoted packet. All of it leaves by the kernel's routes
 *   and neighbours out of the uplink (bpf_fib_lookup; under TC a next hop without
 *   a neighbour entry yet goes through bpf_redirect_neigh, which resolves it). ARP
 *   from the router for the gateway of its link to the node is answered here.
 * - From the uplink: NodePort traffic (to the node's address, a protocol and
 *   port of disp_node_ports) goes into the chain; externalTrafficPolicy Cluster
 *   gives it the cluster SNAT address and a port (so that a backend on another
 *   node answers through this node), Local keeps the client's address. Answers to
 *   masqueraded flows are translated back and go in. Everything else (the node's
 *   own traffic, VXLAN, ARP) is the node kernel's, untouched; so is everything
 *   while the control plane has not configured the cube yet, so that a new
 *   dispatcher never cuts a node off.
 *
 * The translations are netcube/nat.h's sessions, as the nat cube's: a new flow's
 * port is claimed per answer session, conntrack says how long a session lives.
 */
#include <netcube/netcube.h>
#include <netcube/nat.h>

#define DISP_AF_INET 2
#define DISP_ARP_REQUEST 1
#define DISP_ARP_REPLY 2

enum disp_counter {
	DISP_MASQUERADED    = 0, /* pods' flows to the outside, new */
	DISP_NODEPORT_SNAT  = 1, /* NodePort flows given the cluster SNAT address, new */
	DISP_NODEPORT_LOCAL = 2, /* NodePort packets taken in with the client's address */
	DISP_TO_KERNEL      = 3, /* packets from the uplink given to the node's kernel */
	DISP_ARP_ANSWERED   = 4, /* ARP requests for the gateway answered */
	DISP_NO_ROUTE       = 5, /* dropped: no route out of the uplink */
	DISP_NO_NEIGH       = 6, /* dropped (XDP): the next hop has no neighbour entry */
	DISP_NO_PORT        = 7, /* new flows dropped: no free port */
	DISP_INVALID        = 8, /* dropped: no flow, and cannot open one */
	DISP_NOT_OURS       = 9, /* dropped: from the chain, neither a pod's to the outside nor the node's */
	DISP_COUNTERS       = 16,
};

/* The node as the control plane configured it ([0]). */
struct disp_config {
	__u32 configured;      /* 0: not yet; everything from the uplink goes to the kernel */
	__u32 ext_port;        /* the port linked to the uplink */
	__u32 int_port;        /* the port linked to the chain */
	nc_ipv4_t node_addr;   /* the node's address: masquerade's, and NodePorts' */
	nc_ipv4_t cluster_net; /* the cluster's pod range, and its mask */
	nc_ipv4_t cluster_mask;
	nc_ipv4_t cluster_snat; /* the source of NodePort traffic of policy Cluster */
	nc_ipv4_t gateway;     /* the address whose ARP the cube answers on int */
	__u16 port_min;        /* masquerade (and cluster SNAT) ports */
	__u16 port_max;
	nc_mac_t router_mac;   /* the router's MAC on the link: packets into the chain go to it */
	nc_mac_t gateway_mac;  /* the cube's own MAC on that link */
};

struct disp_node_port_key {
	__u8 proto;
	__u8 pad;
	nc_port_t port;
};

struct disp_node_port {
	__u8 cluster;          /* externalTrafficPolicy Cluster: SNAT to cluster_snat */
	__u8 pad[3];
};

/* [0]: the node's addresses, ports and MACs. */
NC_TABLE(disp_config, BPF_MAP_TYPE_ARRAY, __u32, struct disp_config, 1, NC_SCOPE_CUBE);
/* NodePorts taken into the chain: protocol and port -> the traffic policy. */
NC_TABLE(disp_node_ports, BPF_MAP_TYPE_HASH, struct disp_node_port_key, struct disp_node_port, 4096, NC_SCOPE_CUBE);
/* The packet's flow, its route and a new flow's rule: one per CPU, beside
 * nat.h's scratch, as the calls of a new flow's packet fill the stack.
 */
struct disp_scratch {
	struct nc_flow flow;
	struct bpf_fib_lookup fib;
	struct nat_snat rule;
};

/* Counters by enum disp_counter. */
NC_TABLE(disp_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, DISP_COUNTERS, NC_SCOPE_CUBE);
/* Working memory of one packet, per CPU. */
NC_TABLE(disp_scratch, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct disp_scratch, 1, NC_SCOPE_PRIVATE);

static __always_inline void disp_count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&disp_counters, &which);

	if (n)
		*n += 1;
}

static __always_inline int disp_in_cluster(const struct disp_config *cfg, nc_ipv4_t a)
{
	return (a & cfg->cluster_mask) == cfg->cluster_net;
}

/* The session of @f going @dir, applied: 1 when it translated the packet, 0 when
 * the packet has none (or its flow is gone), -1 when the rewrite failed. The
 * flow is tracked as it is before its source is translated (and after its
 * destination is), as nat.h says.
 */
__noinline int disp_session(struct nc_ctx *ctx, struct nat_scratch *w, struct nc_flow *f, __u32 dir)
{
	struct nat_session *s;
	struct nc_ct ct;

	if (!w || !f)
		return -1;
	nat_key(f, dir, &w->key);
	s = bpf_map_lookup_elem(&nat_sessions, &w->key);
	if (!s)
		return 0;
	w->inside = *f;
	if (s->rewrite == NAT_REWRITE_DST)
		nat_applied(&w->inside, s);
	nat_track(ctx, &w->inside, &ct);
	if (!ct.tracked) {
		bpf_map_delete_elem(&nat_sessions, &w->key);
		return 0;
	}
	return nat_translate(ctx, f, s) ? -1 : 1;
}

/* A new flow @f going @dir whose source takes @to and a port of [@port_min,
 * @port_max] (its answers arrive the other way): its two sessions, the packet
 * translated. 0, or the counter of why not.
 */
__noinline int disp_snat_new(struct nc_ctx *ctx, struct nat_scratch *w, struct nc_flow *f, const struct nat_snat *r, __u32 dir)
{
	struct nc_ct ct;

	if (!w || !f || !r)
		return DISP_INVALID;
	if (nat_track(ctx, f, &ct) != NC_CT_NEW)
		return DISP_INVALID;
	if (nat_snat_new(w, f, r, dir == NC_DIR_EGRESS ? NC_DIR_INGRESS : NC_DIR_EGRESS))
		return DISP_NO_PORT;
	nat_key(f, dir, &w->key);
	if (bpf_map_update_elem(&nat_sessions, &w->key, &w->out, BPF_ANY) || nc_ct_commit(nat_ct, f, &ct))
		return DISP_NO_PORT;
	if (nat_translate(ctx, f, &w->out))
		return DISP_INVALID;
	return 0;
}

static __always_inline int disp_snat(struct nc_ctx *ctx, struct nat_scratch *w, struct disp_scratch *d,
				     const struct disp_config *cfg, nc_ipv4_t to, __u32 dir)
{
	struct nat_snat *r = &d->rule;
	int why;

	__builtin_memset(r, 0, sizeof(*r));
	nc_ipv4_mapped(&r->to_addr, to);
	r->port_min = cfg->port_min;
	r->port_max = cfg->port_max;
	why = disp_snat_new(ctx, w, &d->flow, r, dir);
	if (why)
		disp_count(why);
	return why;
}

/* Into the chain: to the router's MAC, from the cube's own on that link. */
static __always_inline int disp_to_chain(struct nc_ctx *ctx, struct nc_md *md, const struct disp_config *cfg)
{
	if (nc_store_bytes(ctx, 0, cfg->router_mac, NC_ETH_ALEN) || nc_store_bytes(ctx, NC_ETH_ALEN, cfg->gateway_mac, NC_ETH_ALEN))
		return nc_drop(ctx, md);
	return nc_redirect(ctx, md, cfg->int_port);
}

static __always_inline int disp_to_kernel(struct nc_ctx *ctx, struct nc_md *md)
{
	disp_count(DISP_TO_KERNEL);
	return nc_pass(ctx, md);
}

/* Out of the uplink, by the kernel's routes and neighbours. */
static __always_inline int disp_to_uplink(struct nc_ctx *ctx, struct nc_md *md, const struct disp_config *cfg, struct disp_scratch *d)
{
	__u32 uplink = nc_port_netdev(md, cfg->ext_port);
	struct bpf_fib_lookup *fib = &d->fib;
	const struct nc_flow *f = &d->flow;
	long rc;

	if (!uplink) {
		disp_count(DISP_NO_ROUTE);
		return nc_drop(ctx, md);
	}
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = DISP_AF_INET;
	fib->l4_protocol = f->proto;
#ifdef NC_HOOK_XDP
	/* The MTU is checked against it. Under TC it stays 0: the kernel checks the skb
	 * itself, a GSO one (a pod's TCP, segmented later) by its segments. */
	fib->tot_len = nc_pkt_len(ctx) - f->l3_off;
#endif
	fib->ipv4_src = f->saddr.word[3];
	fib->ipv4_dst = f->daddr.word[3];
	fib->ifindex = uplink;
	/* As the node's own output to that netdev: a route by another netdev does not match. */
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && fib->ifindex == uplink) {
		if (nc_store_bytes(ctx, 0, fib->dmac, NC_ETH_ALEN) || nc_store_bytes(ctx, NC_ETH_ALEN, fib->smac, NC_ETH_ALEN))
			return nc_drop(ctx, md);
		return nc_redirect(ctx, md, cfg->ext_port);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && fib->ifindex == uplink) {
#ifdef NC_HOOK_TC
		/* The kernel resolves the next hop (fib.ipv4_dst: the gateway, when the route has one) and sends the packet on. */
		struct bpf_redir_neigh nh = { .nh_family = DISP_AF_INET, .ipv4_nh = fib->ipv4_dst };

		nc_count_tx(ctx, md, cfg->ext_port);
		return bpf_redirect_neigh(uplink, &nh, sizeof(nh), 0);
#else
		/* XDP cannot ask the kernel for a neighbour: the node's own traffic to its gateway keeps that entry. */
		disp_count(DISP_NO_NEIGH);
		return nc_drop(ctx, md);
#endif
	}
	disp_count(DISP_NO_ROUTE);
	return nc_drop(ctx, md);
}

/* ARP from the chain: the router asking for its gateway gets the cube's MAC. */
static __always_inline int disp_arp(struct nc_ctx *ctx, struct nc_md *md, const struct disp_config *cfg)
{
	struct nc_arp_ipv4 *a;
	struct nc_cursor c;
	struct ethhdr *eth;
	struct arphdr *h;
	__u16 vlan;

	nc_cursor_init(&c, ctx);
	if (nc_parse_eth(&c, &eth, &vlan) != NC_ETH_P_ARP || vlan)
		return nc_drop(ctx, md);
	h = c.pos;
	a = nc_parse_arp_ipv4(&c);
	if (!a || h->ar_op != bpf_htons(DISP_ARP_REQUEST) || a->target_ip != cfg->gateway)
		return nc_drop(ctx, md);
	h->ar_op = bpf_htons(DISP_ARP_REPLY);
	nc_mac_copy(a->target_mac, a->sender_mac);
	a->target_ip = a->sender_ip;
	nc_mac_copy(a->sender_mac, cfg->gateway_mac);
	a->sender_ip = cfg->gateway;
	nc_mac_copy(eth->h_dest, eth->h_source);
	nc_mac_copy(eth->h_source, cfg->gateway_mac);
	disp_count(DISP_ARP_ANSWERED);
	return nc_redirect(ctx, md, md->in_port);
}

static __always_inline int disp_from_uplink(struct nc_ctx *ctx, struct nc_md *md, const struct disp_config *cfg, struct nat_scratch *w,
					    struct disp_scratch *d)
{
	struct disp_node_port_key k = {};
	struct nc_flow *f = &d->flow;
	struct disp_node_port *np;
	int done;

	if (nc_flow_parse(ctx, f) != NC_FLOW_IP || f->family != NC_FAMILY_IPV4 || f->fragment || f->daddr.word[3] != cfg->node_addr)
		return disp_to_kernel(ctx, md);
	if (nc_flow_is_icmp(f) && nc_icmp_is_error(f->family, f->icmp_type)) {
		done = nat_icmp_error(ctx, w, f, NC_DIR_INGRESS);
		if (done < 0)
			return nc_drop(ctx, md);
		return done ? disp_to_chain(ctx, md, cfg) : disp_to_kernel(ctx, md);
	}
	done = disp_session(ctx, w, f, NC_DIR_INGRESS);
	if (done < 0)
		return nc_drop(ctx, md);
	if (done)
		return disp_to_chain(ctx, md, cfg);
	if (nc_flow_is_icmp(f))
		return disp_to_kernel(ctx, md);
	k.proto = f->proto;
	k.port = f->dport;
	np = bpf_map_lookup_elem(&disp_node_ports, &k);
	if (!np)
		return disp_to_kernel(ctx, md);
	if (!np->cluster) {
		disp_count(DISP_NODEPORT_LOCAL);
		return disp_to_chain(ctx, md, cfg);
	}
	if (disp_snat(ctx, w, d, cfg, cfg->cluster_snat, NC_DIR_INGRESS))
		return nc_drop(ctx, md);
	disp_count(DISP_NODEPORT_SNAT);
	return disp_to_chain(ctx, md, cfg);
}

static __always_inline int disp_from_chain(struct nc_ctx *ctx, struct nc_md *md, const struct disp_config *cfg, struct nat_scratch *w,
					   struct disp_scratch *d)
{
	struct nc_flow *f = &d->flow;
	int parsed = nc_flow_parse(ctx, f), done;

	if (parsed == NC_FLOW_NOT_IP)
		return disp_arp(ctx, md, cfg);
	if (parsed != NC_FLOW_IP || f->family != NC_FAMILY_IPV4 || f->fragment) {
		disp_count(DISP_NOT_OURS);
		return nc_drop(ctx, md);
	}
	if (nc_flow_is_icmp(f) && nc_icmp_is_error(f->family, f->icmp_type)) {
		done = nat_icmp_error(ctx, w, f, NC_DIR_EGRESS);
		if (done < 0)
			return nc_drop(ctx, md);
	} else {
		done = disp_session(ctx, w, f, NC_DIR_EGRESS);
		if (done < 0)
			return nc_drop(ctx, md);
		if (!done && disp_in_cluster(cfg, f->saddr.word[3]) && !disp_in_cluster(cfg, f->daddr.word[3])) {
			if (disp_snat(ctx, w, d, cfg, cfg->node_addr, NC_DIR_EGRESS))
				return nc_drop(ctx, md);
			disp_count(DISP_MASQUERADED);
			done = 1;
		}
	}
	/* Only the node's address leaves: a pod's never does untranslated. */
	if (!done && f->saddr.word[3] != cfg->node_addr) {
		disp_count(DISP_NOT_OURS);
		return nc_drop(ctx, md);
	}
	return disp_to_uplink(ctx, md, cfg, d);
}

static __always_inline int k8sdispatcher(struct nc_ctx *ctx, struct nc_md *md)
{
	struct disp_config *cfg;
	struct disp_scratch *d;
	struct nat_scratch *w;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&disp_config, &zero);
	if (!cfg || !cfg->configured) {
		/* Not configured yet: the node keeps its uplink; the chain has no way out. */
		if (nc_port_netdev(md, md->in_port))
			return disp_to_kernel(ctx, md);
		return nc_drop(ctx, md);
	}
	w = bpf_map_lookup_elem(&nat_scratch, &zero);
	d = bpf_map_lookup_elem(&disp_scratch, &zero);
	if (!w || !d)
		return nc_drop(ctx, md);
	if (md->in_port == cfg->ext_port)
		return disp_from_uplink(ctx, md, cfg, w, d);
	if (md->in_port == cfg->int_port)
		return disp_from_chain(ctx, md, cfg, w, d);
	return nc_drop(ctx, md);
}

NC_CUBE(k8sdispatcher);
