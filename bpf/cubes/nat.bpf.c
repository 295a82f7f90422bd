// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* nat: a transparent cube, stacked where a network meets the outside (a router's
 * or a host's outside port or netdev), that translates addresses: going out
 * (egress), the sources that SNAT rules name take the rule's address and a port
 * from its range; coming in (ingress), DNAT rules send an outside address and
 * port (port forwarding) or a whole address to one inside; the answers of both
 * are translated back. TCP, UDP and ICMP echo (its identifier as the port), IPv4
 * and IPv6; ICMP errors about a translated flow are translated in their quoted
 * packet as well. Packets no rule and no session concern go through untouched.
 *
 * What runs where. The fast path does everything per packet and per new flow:
 * session lookup and rewrite with incremental checksums, and for a flow's first
 * packet the rule lookup (an LPM trie on the source; a hash on the destination),
 * a port (a random start in the rule's range, then the next ones, each claimed
 * by inserting the answer's session with BPF_NOEXIST, so two CPUs never take the
 * same port) and the two sessions of the flow. The slow path only turns config
 * into rules: masquerade (the outside port's own address) is a rule whose
 * address the control plane fills in and rewrites when that address changes.
 *
 * Sessions live as long as the flow's connection-tracking entry, keyed by the
 * flow as the inside sees it: a session whose flow expired (or, TCP, closed) is
 * stale, and its port is free again for the next flow that tries it.
 */
#include <netcube/netcube.h>
#include <netcube/nat.h>

/* An SNAT rule's match: the inside source prefix (IPv4 mapped: prefixlen 96 + n). */
struct nat_snat_key {
	__u32 prefixlen;
	nc_ipv6_t addr;
};

/* A DNAT rule's match: an outside address, protocol (0: any) and port (0: any). */
struct nat_dnat_key {
	nc_ipv6_t addr;
	nc_port_t port;
	__u8 proto;
	__u8 pad;
};

struct nat_dnat {
	nc_ipv6_t to_addr;  /* the inside address */
	nc_port_t to_port;  /* 0: the same port */
	__u16 pad;
};

/* Inside source prefix -> SNAT address and port range. */
NC_TABLE_FLAGS(nat_snat_rules, BPF_MAP_TYPE_LPM_TRIE, struct nat_snat_key, struct nat_snat, 1024, NC_SCOPE_CUBE, BPF_F_NO_PREALLOC);
/* Outside address (and protocol, port) -> inside address (and port). */
NC_TABLE(nat_dnat_rules, BPF_MAP_TYPE_HASH, struct nat_dnat_key, struct nat_dnat, 4096, NC_SCOPE_CUBE);

static __always_inline int nat_egress(struct nc_ctx *ctx, struct nc_md *md, struct nat_scratch *w, struct nc_flow *f)
{
	struct nat_session *s, *out = &w->out;
	struct nat_snat_key rk = { .prefixlen = 128 };
	struct nat_snat *r;
	struct nat_flow *k = &w->key;
	struct nc_ct ct;

	if (nat_track(ctx, f, &ct) == NC_CT_UNTRACKED)
		return nc_forward(ctx, md);
	nat_key(f, NC_DIR_EGRESS, k);
	s = bpf_map_lookup_elem(&nat_sessions, k);
	if (s && ct.tracked) {
		if (nat_translate(ctx, f, s))
			return nc_drop(ctx, md);
		return nc_forward(ctx, md);
	}
	rk.addr = f->saddr;
	r = bpf_map_lookup_elem(&nat_snat_rules, &rk);
	if (!r)
		return nc_forward(ctx, md);
	if (ct.state != NC_CT_NEW) {
		nat_count(NAT_INVALID);
		return nc_drop(ctx, md);
	}
	if (nat_snat_new(w, f, r, NC_DIR_INGRESS)) {
		nat_count(NAT_NO_PORT);
		return nc_drop(ctx, md);
	}
	if (bpf_map_update_elem(&nat_sessions, k, out, BPF_ANY) || nc_ct_commit(nat_ct, f, &ct)) {
		nat_count(NAT_NO_PORT);
		return nc_drop(ctx, md);
	}
	nat_count(NAT_NEW_SNAT);
	if (nat_translate(ctx, f, out))
		return nc_drop(ctx, md);
	return nc_forward(ctx, md);
}

static __always_inline struct nat_dnat *nat_dnat_rule(const struct nc_flow *f)
{
	struct nat_dnat_key k = { .addr = f->daddr, .port = f->dport, .proto = f->proto };
	struct nat_dnat *r;

	if (nc_flow_is_icmp(f))
		k.port = 0;
	r = bpf_map_lookup_elem(&nat_dnat_rules, &k);
	if (r)
		return r;
	k.port = 0;
	r = bpf_map_lookup_elem(&nat_dnat_rules, &k);
	if (r)
		return r;
	k.proto = 0;
	return bpf_map_lookup_elem(&nat_dnat_rules, &k);
}

static __always_inline int nat_ingress(struct nc_ctx *ctx, struct nc_md *md, struct nat_scratch *w, struct nc_flow *f)
{
	struct nat_session *s, *in = &w->in, *out = &w->out;
	struct nc_flow *inside = &w->inside;
	struct nat_dnat *r;
	struct nat_flow *k = &w->key, *rk = &w->reply;
	struct nc_ct ct;

	nat_key(f, NC_DIR_INGRESS, k);
	s = bpf_map_lookup_elem(&nat_sessions, k);
	if (s) {
		/* An answer, or more of a flow forwarded in: alive as long as its flow is. */
		*inside = *f;
		nat_applied(inside, s);
		nat_track(ctx, inside, &ct);
		if (ct.tracked) {
			if (nat_translate(ctx, f, s))
				return nc_drop(ctx, md);
			return nc_forward(ctx, md);
		}
		bpf_map_delete_elem(&nat_sessions, k);
	}
	r = nat_dnat_rule(f);
	if (!r)
		return nc_forward(ctx, md);
	__builtin_memset(in, 0, sizeof(*in));
	in->addr = r->to_addr;
	in->port = r->to_port && !nc_flow_is_icmp(f) ? r->to_port : f->dport;
	in->rewrite = NAT_REWRITE_DST;
	*inside = *f;
	nat_applied(inside, in);
	if (nat_track(ctx, inside, &ct) != NC_CT_NEW) {
		nat_count(NAT_INVALID);
		return nc_drop(ctx, md);
	}
	/* The answers go out from the inside address and port, back to the outside ones. */
	__builtin_memset(out, 0, sizeof(*out));
	out->addr = f->daddr;
	out->port = f->dport;
	out->rewrite = NAT_REWRITE_SRC;
	nat_reply_key(inside, NC_DIR_EGRESS, rk);
	if (bpf_map_update_elem(&nat_sessions, k, in, BPF_ANY) || bpf_map_update_elem(&nat_sessions, rk, out, BPF_ANY) ||
	    nc_ct_commit(nat_ct, inside, &ct))
		return nc_drop(ctx, md);
	nat_count(NAT_NEW_DNAT);
	if (nat_translate(ctx, f, in))
		return nc_drop(ctx, md);
	return nc_forward(ctx, md);
}

static __always_inline int nat(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 dir = md->in_port, zero = 0;
	struct nat_scratch *w;
	struct nc_flow f;

	if (nc_flow_parse(ctx, &f) != NC_FLOW_IP || f.fragment)
		return nc_forward(ctx, md);
	w = bpf_map_lookup_elem(&nat_scratch, &zero);
	if (!w)
		return nc_drop(ctx, md);
	if (nc_flow_is_icmp(&f) && nc_icmp_is_error(f.family, f.icmp_type))
		return nat_icmp_error(ctx, w, &f, dir) < 0 ? nc_drop(ctx, md) : nc_forward(ctx, md);
	if (dir == NC_DIR_EGRESS)
		return nat_egress(ctx, md, w, &f);
	return nat_ingress(ctx, md, w, &f);
}

NC_TRANSPARENT_CUBE(nat);
