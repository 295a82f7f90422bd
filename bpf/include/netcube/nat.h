/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* NAT sessions: the translation table of the cubes that translate addresses and
 * ports (nat, k8sdispatcher), and what they share per packet: a flow's session
 * looked up and applied with incremental checksums, a new flow's port claimed
 * (a random start in its range, then the next ones, each claimed by inserting
 * the answer's session with BPF_NOEXIST, so two CPUs never take the same port),
 * and ICMP errors about a translated flow translated with their quoted packet.
 *
 * A cube that includes this header gets its tables (nat_sessions, nat_ct,
 * nat_counters, nat_scratch): one set per cube. Sessions live as long as their
 * flow's connection-tracking entry in nat_ct, which tracks a flow as it is before
 * its source is translated (and after its destination is): a session whose flow
 * expired (or, TCP, closed) is stale, and its port is free again for the next
 * flow that tries it. remote-services/catalog/control.ts collects the expired ones.
 */
#ifndef __NETCUBE_NAT_H
#define __NETCUBE_NAT_H

#include "conntrack.h"
#include "rewrite.h"

enum nat_limits {
	NAT_PORT_TRIES = 32, /* ports tried for a new flow before it is dropped */
};

/* What a session rewrites on the packets it matches. */
enum nat_rewrite {
	NAT_REWRITE_SRC = 0,
	NAT_REWRITE_DST = 1,
};

enum nat_counter {
	NAT_NEW_SNAT    = 0, /* flows translated going out */
	NAT_NEW_DNAT    = 1, /* flows translated coming in */
	NAT_NO_PORT     = 2, /* new flows dropped: no free port */
	NAT_INVALID     = 3, /* packets dropped: a rule applies but they cannot open a flow */
	NAT_ICMP_ERRORS = 4, /* ICMP errors translated */
	NAT_COUNTERS    = 8,
};

struct nat_snat {
	nc_ipv6_t to_addr;  /* the source address going out */
	__u16 port_min;     /* ports (and ICMP identifiers) to choose from */
	__u16 port_max;
	__u32 pad;
};

/* A flow as packets going one way (dir, enum nc_direction) show it. */
struct nat_flow {
	nc_ipv6_t saddr;
	nc_ipv6_t daddr;
	nc_port_t sport;
	nc_port_t dport;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

struct nat_session {
	nc_ipv6_t addr;     /* the address written */
	nc_port_t port;     /* the port (ICMP echo: the identifier) written */
	__u8 rewrite;       /* enum nat_rewrite */
	__u8 pad;
};

/* The NAT table: each translated flow, once per direction, as it arrives -> the rewrite. */
NC_TABLE(nat_sessions, BPF_MAP_TYPE_LRU_HASH, struct nat_flow, struct nat_session, 65536, NC_SCOPE_CUBE);
/* The BPF stack holds 512 bytes, too few for the flows and keys of a new flow's
 * packet: they live here, one per CPU (a program runs to its end on one CPU).
 */
struct nat_scratch {
	struct nc_flow inside;   /* the packet's flow as the inside sees it */
	struct nat_flow key;     /* the packet's session */
	struct nat_flow reply;   /* the session of the answers */
	struct nat_session in;
	struct nat_session out;
	struct nat_session back;
	struct nc_flow stale;    /* the ends of a session that may be stale */
	struct nc_ct_key ct_key;
};

/* Counters by enum nat_counter. */
NC_TABLE(nat_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, NAT_COUNTERS, NC_SCOPE_CUBE);
/* Translated flows, as the inside sees them: they say how long sessions live. */
NC_CONNTRACK(nat_ct, 32768);
/* Working memory of one packet, per CPU. */
NC_TABLE(nat_scratch, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct nat_scratch, 1, NC_SCOPE_PRIVATE);

static __always_inline void nat_count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&nat_counters, &which);

	if (n)
		*n += 1;
}

static __always_inline void nat_key(const struct nc_flow *f, __u8 dir, struct nat_flow *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = f->saddr;
	k->daddr = f->daddr;
	k->sport = f->sport;
	k->dport = f->dport;
	k->proto = f->proto;
	k->dir = dir;
}

/* The key of the packets that answer @f's, arriving the other way. */
static __always_inline void nat_reply_key(const struct nc_flow *f, __u8 dir, struct nat_flow *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = f->daddr;
	k->daddr = f->saddr;
	k->sport = f->dport;
	k->dport = f->sport;
	k->proto = f->proto;
	k->dir = dir;
}

/* Rewrites @f's packet as session @s says. A global function, as are the others
 * below that more than one path calls: the verifier checks each once, not once per
 * path that reaches it.
 */
__noinline int nat_translate(struct nc_ctx *ctx, struct nc_flow *f, const struct nat_session *s)
{
	int dst;

	if (!f || !s)
		return -1;
	dst = s->rewrite == NAT_REWRITE_DST;
	if (nc_rewrite_addr(ctx, f, dst, &s->addr) || nc_rewrite_port(ctx, f, dst, s->port))
		return -1;
	return 0;
}

/* Tracks @f (as the inside sees its flow) in nat_ct. */
__noinline int nat_track(struct nc_ctx *ctx, const struct nc_flow *f, struct nc_ct *ct)
{
	if (!f || !ct)
		return NC_CT_INVALID;
	return nc_ct_lookup(ctx, nat_ct, f, ct);
}

/* @f as it is once @s rewrote it (the flow as the inside sees it, for sessions of ingress). */
static __always_inline void nat_applied(struct nc_flow *f, const struct nat_session *s)
{
	if (s->rewrite == NAT_REWRITE_DST) {
		f->daddr = s->addr;
		f->dport = s->port;
	} else {
		f->saddr = s->addr;
		f->sport = s->port;
	}
	if (nc_flow_is_icmp(f))
		f->sport = f->dport = s->port;
}

/* Is the flow of ingress session @k -> @s gone (its conntrack entry expired)? */
static __always_inline int nat_stale(struct nat_scratch *w, const struct nat_flow *k, const struct nat_session *s)
{
	struct nc_flow *ends = &w->stale;
	struct nc_ct_entry *e;

	/* The flow's ends: the outside peer, and the inside address and port. */
	__builtin_memset(ends, 0, sizeof(*ends));
	ends->saddr = k->saddr;
	ends->sport = k->sport;
	ends->daddr = s->addr;
	ends->dport = s->port;
	ends->proto = k->proto;
	nc_ct_key_of(ends, &w->ct_key);
	e = bpf_map_lookup_elem(&nat_ct, &w->ct_key);
	return !e || e->expires_ns < bpf_ktime_get_coarse_ns();
}

/* Claims the ingress session @k (its dport, for ICMP both ports, the port tried). */
static __always_inline int nat_claim(struct nat_scratch *w, struct nat_flow *k, const struct nat_session *back)
{
	struct nat_session *old;

	if (!bpf_map_update_elem(&nat_sessions, k, back, BPF_NOEXIST))
		return 0;
	old = bpf_map_lookup_elem(&nat_sessions, k);
	if (old && nat_stale(w, k, old))
		return bpf_map_update_elem(&nat_sessions, k, back, BPF_ANY) ? -1 : 0;
	return -1;
}

/* A new flow whose source rule @r translates: a port, its two sessions. @reply_dir
 * is the way its answers arrive (NC_DIR_INGRESS for a flow going out).
 */
__noinline int nat_snat_new(struct nat_scratch *w, struct nc_flow *f, const struct nat_snat *r, __u32 reply_dir)
{
	struct nat_session *back, *out;
	int has_ports;
	__u32 first, range, start, i;
	struct nat_flow *k;

	if (!w || !f || !r)
		return -1;
	back = &w->back;
	out = &w->out;
	k = &w->reply;
	has_ports = f->proto == NC_IPPROTO_TCP || f->proto == NC_IPPROTO_UDP || nc_flow_is_icmp(f);
	first = r->port_min;
	range = (__u32)r->port_max - r->port_min + 1;
	__builtin_memset(back, 0, sizeof(*back));
	back->addr = f->saddr;
	back->port = f->sport;
	back->rewrite = NAT_REWRITE_DST;
	nat_reply_key(f, reply_dir, k);
	k->daddr = r->to_addr;
	out->addr = r->to_addr;
	out->rewrite = NAT_REWRITE_SRC;
	out->pad = 0;
	if (!has_ports || r->port_max < r->port_min) {
		/* Only the address changes: one flow per inside host and outside peer. */
		out->port = f->sport;
		return nat_claim(w, k, back);
	}
	start = bpf_get_prandom_u32() % range;
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = bpf_htons(first + (start + i) % range);

		k->dport = port;
		if (nc_flow_is_icmp(f))
			k->sport = port;
		if (nat_claim(w, k, back) == 0) {
			out->port = port;
			return 0;
		}
	}
	return -1;
}

/* Patches the L4 checksum of a quoted packet (@q) whose address @old and port on
 * side @dst' (the other of the session's) become @s's, when the quote holds it,
 * and the ICMP checksum at @icmp_csum for that change of the quoted bytes.
 */
static __always_inline int nat_quoted_l4_csum(struct nc_ctx *ctx, const struct nc_flow *q, __u32 icmp_csum,
					      const nc_ipv6_t *old, const struct nat_session *s, int dst)
{
	__u32 off = q->l4_off + (q->proto == NC_IPPROTO_UDP ? 6 : 16);
	nc_port_t old_port = dst ? q->sport : q->dport;
	__u16 sum, was;

	if (off + 2 > nc_pkt_len(ctx) || nc_load_bytes(ctx, off, &sum, 2))
		return 0;
	if (q->proto == NC_IPPROTO_UDP && q->family == NC_FAMILY_IPV4 && !sum)
		return 0;
	was = sum;
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum = nc_csum_replace(sum, old->word[i], s->addr.word[i], 4);
	sum = nc_csum_replace(sum, old_port, s->port, 2);
	if (q->proto == NC_IPPROTO_UDP && !sum)
		sum = 0xffff;
	if (nc_store_bytes(ctx, off, &sum, 2) || nc_l4_csum(ctx, icmp_csum, was, sum, 2, 0))
		return -1;
	return 0;
}

/* An ICMP error about a translated flow: the session of the packets going the way
 * the error goes rewrites the error's own address, and the quoted packet (which
 * went the other way) on its other side. 1 when it translated the error, 0 when
 * the error concerns no session, -1 when the rewrite failed (drop it).
 */
__noinline int nat_icmp_error(struct nc_ctx *ctx, struct nat_scratch *w, struct nc_flow *f, __u32 dir)
{
	struct nc_flow *inner;
	struct nat_session *s;
	struct nat_flow *k;
	__u32 icmp_csum, off;
	nc_ipv6_t old_addr;
	nc_port_t old_port;
	int dst;

	if (!w || !f)
		return -1;
	inner = &w->inside;
	k = &w->key;
	icmp_csum = f->l4_off + 2;
	if (nc_flow_parse_quoted(ctx, f, inner) != NC_FLOW_IP || inner->fragment)
		return 0;
	nat_reply_key(inner, dir, k);
	s = bpf_map_lookup_elem(&nat_sessions, k);
	if (!s)
		return 0;
	dst = s->rewrite == NAT_REWRITE_DST;
	/* The quoted packet, on the side opposite to the error's. */
	old_addr = dst ? inner->saddr : inner->daddr;
	if (inner->family == NC_FAMILY_IPV4) {
		/* Its header checksum moves against its address: the ICMP sum over both stays. */
		if (nc_l3_csum(ctx, inner->l3_off + 10, old_addr.word[3], s->addr.word[3], 4) ||
		    nc_store_bytes(ctx, inner->l3_off + (dst ? 12 : 16), &s->addr.word[3], 4))
			return -1;
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			if (nc_l4_csum(ctx, icmp_csum, old_addr.word[i], s->addr.word[i], 4, 0))
				return -1;
		if (nc_store_bytes(ctx, inner->l3_off + (dst ? 8 : 24), &s->addr, 16))
			return -1;
	}
	/* Its L4 checksum, where the quote holds it: for its address and port. */
	if ((inner->proto == NC_IPPROTO_UDP || inner->proto == NC_IPPROTO_TCP) &&
	    nat_quoted_l4_csum(ctx, inner, icmp_csum, &old_addr, s, dst))
		return -1;
	if (inner->proto == NC_IPPROTO_TCP || inner->proto == NC_IPPROTO_UDP || nc_flow_is_icmp(inner)) {
		if (nc_flow_is_icmp(inner))
			off = inner->l4_off + 4;
		else
			off = inner->l4_off + (dst ? 0 : 2);
		old_port = nc_flow_is_icmp(inner) ? inner->sport : dst ? inner->sport : inner->dport;
		if (old_port != s->port &&
		    (nc_l4_csum(ctx, icmp_csum, old_port, s->port, 2, 0) || nc_store_bytes(ctx, off, &s->port, 2)))
			return -1;
	}
	/* The error itself, to or from the address the flow has on this side. */
	if (nc_rewrite_addr(ctx, f, dst, &s->addr))
		return -1;
	nat_count(NAT_ICMP_ERRORS);
	return 1;
}

#endif /* __NETCUBE_NAT_H */
