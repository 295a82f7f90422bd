// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* firewall: a transparent cube that accepts or drops IP packets by rules, one
 * list per direction, with packet and byte counters per rule and a default action
 * per direction. Rules match source and destination prefixes (IPv4, IPv6),
 * protocol, port ranges, TCP flags and connection-tracking state. Packets that
 * are not IP (ARP, ...) go through.
 *
 * What runs where. The rule compiler (remote-services/firewall/tables.ts) turns
 * the rules of a direction into decision trees; this fast path only walks them.
 * An inner node compares one field of the packet with a threshold; a leaf names
 * at most FW_LEAF_RULES rules, which the packet is checked against in order. The
 * rules are split over trees by the addresses they name (none; source, destination
 * or both, per family), so that rules for any source are not copied into every
 * part of a tree that splits on sources: a packet walks four trees (the one
 * without addresses and the three of its family) and the lowest rule index any of
 * them finds wins, as in a list of rules. A packet costs the depth of its trees,
 * which grows with the logarithm of the rule count (1,000 rules: 8 compares;
 * 10,000: 14), plus at most four short rule checks per tree. Building the trees is
 * the slow path's work, once per change.
 *
 * Changes are atomic. Every table of rules exists twice (two banks); a packet
 * reads fw_active once and uses one bank throughout. The control plane writes the
 * bank no packet uses, then switches fw_active with one store: a packet sees the
 * old rule set or the new one, never a mix, and none is lost in between.
 *
 * Connection tracking runs only when some rule names a ct state (fw_chain.track):
 * then every packet is tracked, and a new flow is recorded when it is accepted, in
 * either direction, so the other direction's rules see its replies established.
 */
#include <netcube/netcube.h>
#include <netcube/conntrack.h>

enum fw_limits {
	FW_MAX_RULES        = 10000, /* per direction */
	FW_BANKS            = 2,
	FW_DIRS             = 2,
	FW_MAX_NODES        = 65536, /* per direction and bank, all trees */
	FW_MAX_LEAF_ENTRIES = 65536,
	FW_LEAF_RULES       = 4,     /* rules a leaf names */
	FW_MAX_DEPTH        = 48,    /* compares from a root to a leaf */
	FW_SLOTS            = 2 * FW_MAX_RULES + 1, /* counters per direction */
	FW_DEFAULT_SLOT     = 2 * FW_MAX_RULES,
	FW_TREES            = 7,
	FW_NO_TREE          = 0xffffffff,
};

/* What an inner node compares (a leaf: FW_LEAF). */
enum fw_field {
	FW_SRC_HI = 0, /* the source address as IPv6 (IPv4: ::ffff:a.b.c.d), first 64 bits */
	FW_SRC_LO = 1,
	FW_DST_HI = 2,
	FW_DST_LO = 3,
	FW_PROTO  = 4,
	FW_SPORT  = 5,
	FW_DPORT  = 6,
	FW_CT     = 7, /* enum nc_ct_state */
	FW_FIELDS = 8,
	FW_LEAF   = 255,
};

enum fw_action {
	FW_ACCEPT = 0,
	FW_DROP   = 1,
};

/* The trees of a direction, by the addresses their rules name. */
enum fw_tree {
	FW_TREE_ANY     = 0,
	FW_TREE_V4_SRC  = 1, /* v4: 1..3, v6: 4..6 */
	FW_TREE_V6_SRC  = 4,
};

struct fw_node {
	__u64 threshold; /* inner: fields above it go right */
	__u32 next;      /* inner: the left child (the right one follows); leaf: its first fw_leaves entry */
	__u16 field;     /* enum fw_field */
	__u16 count;     /* leaf: rules it names */
};

struct fw_rule {
	__u64 lo[4];     /* address fields FW_SRC_HI..FW_DST_LO: lowest value matched */
	__u64 hi[4];     /* and highest */
	__u16 sport_lo;
	__u16 sport_hi;
	__u16 dport_lo;
	__u16 dport_hi;
	__u8 proto_lo;
	__u8 proto_hi;
	__u8 ct_mask;    /* bit n: ct state n matches */
	__u8 flags_mask; /* TCP flags that must be ... */
	__u8 flags_value; /* ... these */
	__u8 pad[3];
	enum fw_action action;
	__u32 slot;      /* its counters: fw_counters[direction * FW_SLOTS + slot] */
};

/* A direction of a bank. */
struct fw_chain {
	__u32 roots[FW_TREES];  /* fw_nodes index of each tree's root, FW_NO_TREE without rules */
	enum fw_action default_action;
	__u8 track;             /* some rule reads the ct state: track every flow */
	__u8 loaded;            /* 0: never written; packets go through */
	__u16 pad;
};

struct fw_active {
	__u32 bank;
};

struct fw_counter {
	__u64 packets;
	__u64 bytes;
};

/* The bank packets use ([0]); the control plane flips it once the other is written. */
NC_TABLE(fw_active, BPF_MAP_TYPE_ARRAY, __u32, struct fw_active, 1, NC_SCOPE_CUBE);
/* Per bank and direction ([bank * 2 + direction]): tree roots, default action. */
NC_TABLE(fw_chains, BPF_MAP_TYPE_ARRAY, __u32, struct fw_chain, FW_BANKS * FW_DIRS, NC_SCOPE_CUBE);
/* Tree nodes, FW_MAX_NODES per bank and direction. */
NC_TABLE(fw_nodes, BPF_MAP_TYPE_ARRAY, __u32, struct fw_node, FW_BANKS * FW_DIRS * FW_MAX_NODES, NC_SCOPE_CUBE);
/* The rules each leaf names, as fw_rules indexes in rule order. */
NC_TABLE(fw_leaves, BPF_MAP_TYPE_ARRAY, __u32, __u32, FW_BANKS * FW_DIRS * FW_MAX_LEAF_ENTRIES, NC_SCOPE_CUBE);
/* Rules, FW_MAX_RULES per bank and direction, at their index in the list. */
NC_TABLE(fw_rules, BPF_MAP_TYPE_ARRAY, __u32, struct fw_rule, FW_BANKS * FW_DIRS * FW_MAX_RULES, NC_SCOPE_CUBE);
/* Packets and bytes per rule slot and direction, and of the default actions. */
NC_TABLE(fw_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct fw_counter, FW_DIRS * FW_SLOTS, NC_SCOPE_CUBE);
/* Connections, when a rule asks for their state. */
NC_CONNTRACK(fw_ct, 32768);

static __always_inline __u64 fw_half(const nc_ipv6_t *a, int second)
{
	return (__u64)bpf_ntohl(a->word[2 * second]) << 32 | bpf_ntohl(a->word[2 * second + 1]);
}

/* The packet's fields, and the index of the first rule found to match so far. */
struct fw_packet {
	__u64 v[FW_FIELDS];
	__u32 best;   /* fw_rules index; FW_NO_TREE: none yet */
	__u8 tcp_flags;
	__u8 pad[3];
};

static __always_inline int fw_rule_matches(const struct fw_rule *r, const struct fw_packet *p)
{
	const __u64 *v = p->v;

#pragma unroll
	for (int i = 0; i < 4; i++)
		if (v[i] < r->lo[i] || v[i] > r->hi[i])
			return 0;
	return v[FW_PROTO] >= r->proto_lo && v[FW_PROTO] <= r->proto_hi &&
	       v[FW_SPORT] >= r->sport_lo && v[FW_SPORT] <= r->sport_hi &&
	       v[FW_DPORT] >= r->dport_lo && v[FW_DPORT] <= r->dport_hi &&
	       (r->ct_mask >> v[FW_CT]) & 1 && (p->tcp_flags & r->flags_mask) == r->flags_value;
}

/* Walks the tree at @root and lowers p->best to the first rule of its leaf that
 * matches, when that comes before p->best. A global function: the verifier checks
 * it once, not once per tree and path that reaches it.
 */
__noinline int fw_search(__u32 root, struct fw_packet *p)
{
	struct fw_node *n = NULL;
	__u32 i, at = root;

	if (!p || root == FW_NO_TREE)
		return 0;
	for (i = 0; i < FW_MAX_DEPTH; i++) {
		n = bpf_map_lookup_elem(&fw_nodes, &at);
		if (!n || n->field == FW_LEAF)
			break;
		at = n->next + (p->v[n->field & (FW_FIELDS - 1)] > n->threshold);
	}
	if (!n || n->field != FW_LEAF)
		return 0;
	for (i = 0; i < FW_LEAF_RULES && i < n->count; i++) {
		__u32 e = n->next + i, *index;
		struct fw_rule *r;

		index = bpf_map_lookup_elem(&fw_leaves, &e);
		if (!index || *index >= p->best)
			return 0;
		r = bpf_map_lookup_elem(&fw_rules, index);
		if (r && fw_rule_matches(r, p)) {
			p->best = *index;
			return 0;
		}
	}
	return 0;
}

static __always_inline void fw_count(__u32 dir, __u32 slot, __u32 len)
{
	__u32 key = dir * FW_SLOTS + slot;
	struct fw_counter *c = bpf_map_lookup_elem(&fw_counters, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline int firewall(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 dir = md->in_port & 1, zero = 0, key, slot;
	struct fw_active *active = bpf_map_lookup_elem(&fw_active, &zero);
	struct fw_chain *chain;
	enum fw_action action;
	__u32 tree;
	struct nc_flow flow;
	struct nc_ct ct;
	struct fw_packet p = { .best = FW_NO_TREE };
	int parsed;

	if (!active)
		return nc_drop(ctx, md);
	key = (active->bank & 1) * FW_DIRS + dir;
	chain = bpf_map_lookup_elem(&fw_chains, &key);
	if (!chain || !chain->loaded)
		return nc_forward(ctx, md);
	parsed = nc_flow_parse(ctx, &flow);
	if (parsed == NC_FLOW_NOT_IP)
		return nc_forward(ctx, md);
	ct.state = NC_CT_INVALID;
	if (chain->track && parsed == NC_FLOW_IP)
		nc_ct_lookup(ctx, fw_ct, &flow, &ct);
	p.v[FW_SRC_HI] = fw_half(&flow.saddr, 0);
	p.v[FW_SRC_LO] = fw_half(&flow.saddr, 1);
	p.v[FW_DST_HI] = fw_half(&flow.daddr, 0);
	p.v[FW_DST_LO] = fw_half(&flow.daddr, 1);
	p.v[FW_PROTO] = flow.proto;
	p.v[FW_SPORT] = bpf_ntohs(flow.sport);
	p.v[FW_DPORT] = bpf_ntohs(flow.dport);
	p.v[FW_CT] = chain->track ? ct.state : NC_CT_NEW;
	p.tcp_flags = flow.tcp_flags;

	tree = flow.family == NC_FAMILY_IPV4 ? FW_TREE_V4_SRC : FW_TREE_V6_SRC;
	fw_search(chain->roots[FW_TREE_ANY], &p);
	fw_search(chain->roots[tree], &p);
	fw_search(chain->roots[tree + 1], &p);
	fw_search(chain->roots[tree + 2], &p);
	action = chain->default_action;
	slot = FW_DEFAULT_SLOT;
	if (p.best != FW_NO_TREE) {
		struct fw_rule *r = bpf_map_lookup_elem(&fw_rules, &p.best);

		if (r) {
			action = r->action;
			slot = r->slot;
		}
	}
	fw_count(dir, slot < FW_SLOTS ? slot : FW_DEFAULT_SLOT, nc_pkt_len(ctx));
	if (action != FW_ACCEPT)
		return nc_drop(ctx, md);
	if (chain->track && ct.state == NC_CT_NEW)
		nc_ct_commit(fw_ct, &flow, &ct);
	return nc_forward(ctx, md);
}

NC_TRANSPARENT_CUBE(firewall);
