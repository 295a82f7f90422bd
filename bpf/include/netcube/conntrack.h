/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Connection tracking for any cube: which flow a packet belongs to and where that
 * flow stands (new, established, related, invalid), for TCP, UDP, ICMP and any
 * other IP protocol, IPv4 and IPv6.
 *
 *   NC_CONNTRACK(ct, 65536);                         a table, and its settings
 *   struct nc_flow flow;  struct nc_ct ct_res;
 *   nc_flow_parse(ctx, &flow);
 *   nc_ct_lookup(ctx, ct, &flow, &ct_res);            the packet's state; updates the flow
 *   if (ct_res.state == NC_CT_NEW && accepted)
 *           nc_ct_commit(ct, &flow, &ct_res);         only flows the cube lets through
 *
 * One entry per flow, keyed by its 5-tuple in a fixed order of its two ends
 * (struct nc_ct_key), so both directions find it with one lookup. The entry says
 * which end opened the flow, whether the other has answered, and for TCP the
 * connection's state, whose closing (FIN both ways, or RST) shortens the flow's
 * timeout: a closed flow goes in seconds, not hours.
 *
 * What is done where: the fast path does everything per packet (lookup, state,
 * refresh, commit); the tables are LRU hashes, so a full table evicts its least
 * recently used flows instead of refusing new ones, and nothing in the data path
 * ever walks them. An expired entry is simply treated as absent and overwritten
 * by the next commit of its tuple; removing expired entries ahead of that is the
 * control plane's job (any service can list the table and delete entries whose
 * expires_ns is past the host's CLOCK_MONOTONIC).
 *
 * Not done: TCP sequence-window tracking (a packet's flags are checked against
 * the connection's state, not its sequence numbers), reassembly (a fragment
 * after the first carries no ports: NC_CT_UNTRACKED), and expectations (FTP and
 * the like: their data connections are new flows).
 */
#ifndef __NETCUBE_CONNTRACK_H
#define __NETCUBE_CONNTRACK_H

#include "flow.h"
#include "tables.h"

/* What a packet is to connection tracking. Bit n of a state mask is state n. */
enum nc_ct_state {
	NC_CT_NEW         = 0, /* opens a flow, or goes the way the flow was opened before any answer */
	NC_CT_ESTABLISHED = 1, /* of a flow that has seen packets both ways */
	NC_CT_RELATED     = 2, /* an ICMP error about a tracked flow */
	NC_CT_INVALID     = 3, /* cannot start or belong to a flow (TCP without SYN, a stray reply...) */
	NC_CT_UNTRACKED   = 4, /* not for tracking: not IP, a later fragment, ICMP other than echo and errors */
	NC_CT_STATES      = 5,
};

/* The way a packet goes within its flow. */
enum nc_ct_dir {
	NC_CT_DIR_ORIGINAL = 0, /* as the flow's first packet went */
	NC_CT_DIR_REPLY    = 1,
};

enum nc_ct_tcp_state {
	NC_CT_TCP_NONE        = 0, /* not TCP */
	NC_CT_TCP_SYN_SENT    = 1,
	NC_CT_TCP_SYN_RECV    = 2,
	NC_CT_TCP_ESTABLISHED = 3,
	NC_CT_TCP_FIN_WAIT    = 4, /* one end sent FIN */
	NC_CT_TCP_TIME_WAIT   = 5, /* both ends sent FIN */
	NC_CT_TCP_CLOSE       = 6, /* reset */
};

/* A flow's two ends in a fixed order (the smaller address, then port, first), so
 * that a packet and its answer make the same key.
 */
struct nc_ct_key {
	nc_ipv6_t addr_a;
	nc_ipv6_t addr_b;
	nc_port_t port_a;
	nc_port_t port_b;
	__u8 proto;
	__u8 pad[3];
};

struct nc_ct_entry {
	__u64 expires_ns;          /* CLOCK_MONOTONIC time the flow is gone at */
	enum nc_ct_tcp_state tcp;
	__u8 opened_by_b;          /* the flow's first packet came from end b */
	__u8 seen_reply;           /* the other end has answered */
	__u8 fin_original;         /* TCP: FIN seen from the opening end */
	__u8 fin_reply;            /* TCP: FIN seen from the other end */
};

/* Timeouts in seconds; 0 takes the default. */
struct nc_ct_config {
	__u32 tcp_syn;         /* opening (SYN seen, not yet established): 60 */
	__u32 tcp_established; /* 21600 (6 hours) */
	__u32 tcp_fin_wait;    /* one end has sent FIN: 120 */
	__u32 tcp_time_wait;   /* both ends have sent FIN: 30 */
	__u32 tcp_close;       /* reset: 10 */
	__u32 udp;             /* one way only so far: 30 */
	__u32 udp_stream;      /* answered: 180 */
	__u32 icmp;            /* echo: 30 */
	__u32 other;           /* any other protocol: 600 */
};

/* What nc_ct_lookup found out about a packet, and what nc_ct_commit needs. It
 * holds no pointer, so a cube may fill it in a function of its own (a BPF global
 * function, which the verifier checks once, cannot hand pointers back).
 */
struct nc_ct {
	struct nc_ct_key key;
	struct nc_ct_entry entry;  /* the flow's entry as this packet left it, when tracked */
	__u8 tracked;              /* the flow has an entry (not new, invalid, untracked) */
	__u8 state;                /* enum nc_ct_state */
	__u8 dir;                  /* enum nc_ct_dir; of the quoted packet, for RELATED */
	__u8 from_b;               /* the packet (the quoted one, for RELATED) comes from end b */
};

/* A conntrack table @name of @max flows, and its timeouts (@name_config[0]). */
#define NC_CONNTRACK_SCOPE(name, max, scope)						\
	NC_TABLE(name, BPF_MAP_TYPE_LRU_HASH, struct nc_ct_key, struct nc_ct_entry, max, scope); \
	NC_TABLE(name##_config, BPF_MAP_TYPE_ARRAY, __u32, struct nc_ct_config, 1, scope)
#define NC_CONNTRACK(name, max) NC_CONNTRACK_SCOPE(name, max, NC_SCOPE_CUBE)

#define nc_ct_lookup(ctx, name, flow, res) __nc_ct_lookup(ctx, &name, &name##_config, flow, res)
#define nc_ct_commit(name, flow, res) __nc_ct_commit(&name, &name##_config, flow, res)

#define NC_NS_PER_S 1000000000ULL
/* An entry's expiry is written when it moves by more than this: a flow's packets
 * then read its cache line without dirtying it on every CPU they cross.
 */
#define NC_CT_REFRESH_NS (1 * NC_NS_PER_S)

static __always_inline __u32 nc_ct_or(__u32 v, __u32 def)
{
	return v ? v : def;
}

/* The timeout of a flow in its current state, in ns. */
static __always_inline __u64 nc_ct_timeout(const struct nc_ct_config *cfg, __u8 proto, const struct nc_ct_entry *e)
{
	struct nc_ct_config none = {};
	__u32 s;

	if (!cfg)
		cfg = &none;
	switch (proto) {
	case NC_IPPROTO_TCP:
		switch (e->tcp) {
		case NC_CT_TCP_SYN_SENT:
		case NC_CT_TCP_SYN_RECV:
			s = nc_ct_or(cfg->tcp_syn, 60);
			break;
		case NC_CT_TCP_FIN_WAIT:
			s = nc_ct_or(cfg->tcp_fin_wait, 120);
			break;
		case NC_CT_TCP_TIME_WAIT:
			s = nc_ct_or(cfg->tcp_time_wait, 30);
			break;
		case NC_CT_TCP_CLOSE:
			s = nc_ct_or(cfg->tcp_close, 10);
			break;
		default:
			s = nc_ct_or(cfg->tcp_established, 21600);
		}
		break;
	case NC_IPPROTO_UDP:
		s = e->seen_reply ? nc_ct_or(cfg->udp_stream, 180) : nc_ct_or(cfg->udp, 30);
		break;
	case NC_IPPROTO_ICMP:
	case NC_IPPROTO_ICMPV6:
		s = nc_ct_or(cfg->icmp, 30);
		break;
	default:
		s = nc_ct_or(cfg->other, 600);
	}
	return (__u64)s * NC_NS_PER_S;
}

/* Is end (@a, @pa) before end (@b, @pb)? Any total order does, as long as both
 * directions of a flow use the same one.
 */
static __always_inline int nc_ct_end_before(const nc_ipv6_t *a, nc_port_t pa, const nc_ipv6_t *b, nc_port_t pb)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 x = bpf_ntohl(a->word[i]), y = bpf_ntohl(b->word[i]);

		if (x != y)
			return x < y;
	}
	return bpf_ntohs(pa) <= bpf_ntohs(pb);
}

/* The key of @f's flow; returns whether @f's source is end b. */
static __always_inline int nc_ct_key_of(const struct nc_flow *f, struct nc_ct_key *k)
{
	int from_b = !nc_ct_end_before(&f->saddr, f->sport, &f->daddr, f->dport);

	__builtin_memset(k, 0, sizeof(*k));
	k->proto = f->proto;
	if (from_b) {
		k->addr_a = f->daddr;
		k->port_a = f->dport;
		k->addr_b = f->saddr;
		k->port_b = f->sport;
	} else {
		k->addr_a = f->saddr;
		k->port_a = f->sport;
		k->addr_b = f->daddr;
		k->port_b = f->dport;
	}
	return from_b;
}

/* TCP: moves @e along with a packet of @flags going @dir; returns the packet's
 * state (NC_CT_ESTABLISHED / NC_CT_NEW, or NC_CT_INVALID when the flags make no
 * sense here, which leaves the entry as it was).
 */
static __always_inline int nc_ct_tcp_step(struct nc_ct_entry *e, __u8 flags, __u8 dir, struct nc_ct_entry *next)
{
	*next = *e;
	if (flags & NC_TCP_RST) {
		next->tcp = NC_CT_TCP_CLOSE;
		return NC_CT_ESTABLISHED;
	}
	if (flags & NC_TCP_SYN) {
		if (!(flags & NC_TCP_ACK)) {
			/* A retransmitted SYN; or both ends opening at once. */
			if (e->tcp == NC_CT_TCP_SYN_SENT) {
				if (dir == NC_CT_DIR_REPLY)
					next->tcp = NC_CT_TCP_SYN_RECV;
				return NC_CT_NEW;
			}
			return NC_CT_INVALID;
		}
		/* SYN-ACK: from the answering end, while opening or (lost ACK) after. */
		if (dir != NC_CT_DIR_REPLY || e->tcp > NC_CT_TCP_ESTABLISHED)
			return NC_CT_INVALID;
		if (e->tcp != NC_CT_TCP_ESTABLISHED)
			next->tcp = NC_CT_TCP_SYN_RECV;
		return NC_CT_ESTABLISHED;
	}
	if (e->tcp == NC_CT_TCP_SYN_SENT)
		return NC_CT_INVALID; /* nothing but SYN before the answer */
	if (e->tcp == NC_CT_TCP_SYN_RECV && dir == NC_CT_DIR_ORIGINAL && (flags & NC_TCP_ACK))
		next->tcp = NC_CT_TCP_ESTABLISHED;
	if (flags & NC_TCP_FIN) {
		if (dir == NC_CT_DIR_ORIGINAL)
			next->fin_original = 1;
		else
			next->fin_reply = 1;
		if (e->tcp < NC_CT_TCP_CLOSE)
			next->tcp = next->fin_original && next->fin_reply ? NC_CT_TCP_TIME_WAIT : NC_CT_TCP_FIN_WAIT;
	}
	return NC_CT_ESTABLISHED;
}

/* Could @f open a flow? TCP only with a bare SYN; ICMP with an echo request. */
static __always_inline int nc_ct_may_open(const struct nc_flow *f)
{
	if (f->proto == NC_IPPROTO_TCP)
		return (f->tcp_flags & (NC_TCP_SYN | NC_TCP_ACK | NC_TCP_RST | NC_TCP_FIN)) == NC_TCP_SYN;
	if (nc_flow_is_icmp(f))
		return f->icmp_type == (f->family == NC_FAMILY_IPV4 ? NC_ICMP_ECHO_REQUEST : NC_ICMPV6_ECHO_REQUEST);
	return 1;
}

/* Flags no TCP segment carries: SYN with FIN or RST, or none at all. */
static __always_inline int nc_ct_tcp_flags_bad(__u8 flags)
{
	if (flags & NC_TCP_SYN)
		return flags & (NC_TCP_FIN | NC_TCP_RST);
	return !(flags & (NC_TCP_ACK | NC_TCP_RST));
}

static __always_inline int __nc_ct_lookup(struct nc_ctx *ctx, void *table, void *config, const struct nc_flow *f,
					  struct nc_ct *res)
{
	struct nc_flow quoted;
	struct nc_ct_entry *e, next;
	struct nc_ct_config *cfg;
	__u64 now, expires;
	__u32 zero = 0;
	int state;

	res->tracked = 0;
	res->dir = NC_CT_DIR_ORIGINAL;
	if (f->fragment || (nc_flow_is_icmp(f) && !nc_icmp_is_echo(f->family, f->icmp_type) &&
			    !nc_icmp_is_error(f->family, f->icmp_type))) {
		res->from_b = 0;
		res->state = NC_CT_UNTRACKED;
		return NC_CT_UNTRACKED;
	}
	if (nc_flow_is_icmp(f) && nc_icmp_is_error(f->family, f->icmp_type)) {
		/* Related to the flow of the packet it quotes, or to nothing. */
		res->state = NC_CT_INVALID;
		if (nc_flow_parse_quoted(ctx, f, &quoted) != NC_FLOW_IP || quoted.fragment)
			return NC_CT_INVALID;
		res->from_b = nc_ct_key_of(&quoted, &res->key);
		e = bpf_map_lookup_elem(table, &res->key);
		if (!e || e->expires_ns < bpf_ktime_get_coarse_ns())
			return NC_CT_INVALID;
		res->tracked = 1;
		res->entry = *e;
		res->dir = res->from_b == e->opened_by_b ? NC_CT_DIR_ORIGINAL : NC_CT_DIR_REPLY;
		res->state = NC_CT_RELATED;
		return NC_CT_RELATED;
	}
	res->from_b = nc_ct_key_of(f, &res->key);
	if (f->proto == NC_IPPROTO_TCP && nc_ct_tcp_flags_bad(f->tcp_flags)) {
		res->state = NC_CT_INVALID;
		return NC_CT_INVALID;
	}
	now = bpf_ktime_get_coarse_ns();
	e = bpf_map_lookup_elem(table, &res->key);
	if (e && e->expires_ns >= now) {
		res->dir = res->from_b == e->opened_by_b ? NC_CT_DIR_ORIGINAL : NC_CT_DIR_REPLY;
		next = *e;
		if (f->proto == NC_IPPROTO_TCP) {
			/* A SYN on a closed connection opens a new one on the same ports. */
			if (e->tcp >= NC_CT_TCP_TIME_WAIT && nc_ct_may_open(f))
				goto open;
			state = nc_ct_tcp_step(e, f->tcp_flags, res->dir, &next);
			if (state == NC_CT_INVALID) {
				res->state = NC_CT_INVALID;
				return NC_CT_INVALID;
			}
		}
		if (res->dir == NC_CT_DIR_REPLY)
			next.seen_reply = 1;
		cfg = bpf_map_lookup_elem(config, &zero);
		expires = now + nc_ct_timeout(cfg, f->proto, &next);
		if (next.tcp != e->tcp || next.seen_reply != e->seen_reply || next.fin_original != e->fin_original ||
		    next.fin_reply != e->fin_reply || expires > e->expires_ns + NC_CT_REFRESH_NS || expires < e->expires_ns) {
			next.expires_ns = expires;
			*e = next;
		}
		res->tracked = 1;
		res->entry = next;
		res->state = next.seen_reply ? NC_CT_ESTABLISHED : NC_CT_NEW;
		return res->state;
	}
open:
	res->dir = NC_CT_DIR_ORIGINAL;
	res->state = nc_ct_may_open(f) ? NC_CT_NEW : NC_CT_INVALID;
	return res->state;
}

/* Records the flow of a packet nc_ct_lookup found NC_CT_NEW and the cube let
 * through, over any expired or closed entry of the same tuple; one already open
 * is left alone. Returns 0, or the map's error (an LRU table makes room itself).
 */
static __always_inline int __nc_ct_commit(void *table, void *config, const struct nc_flow *f, struct nc_ct *res)
{
	struct nc_ct_entry e = {};
	struct nc_ct_config *cfg;
	__u32 zero = 0;
	long err;

	if (res->state != NC_CT_NEW || res->tracked)
		return 0;
	e.opened_by_b = res->from_b;
	e.tcp = f->proto == NC_IPPROTO_TCP ? NC_CT_TCP_SYN_SENT : NC_CT_TCP_NONE;
	cfg = bpf_map_lookup_elem(config, &zero);
	e.expires_ns = bpf_ktime_get_coarse_ns() + nc_ct_timeout(cfg, f->proto, &e);
	err = bpf_map_update_elem(table, &res->key, &e, BPF_ANY);
	if (!err) {
		res->tracked = 1;
		res->entry = e;
	}
	return err;
}

#endif /* __NETCUBE_CONNTRACK_H */
