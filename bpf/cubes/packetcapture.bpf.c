// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* packetcapture: a transparent cube that copies the packets it sees to netcubed,
 * which streams them to whoever captures (netcubectl capture), and always lets
 * them go on, unchanged.
 *
 * Nothing is copied until a session reads: netcubed sets capture_config.active
 * when one starts and clears it when it ends, so an idle capture cube costs one
 * array lookup and a compare on top of the hop that reaches it. A session holds
 * a lease (lease_until_ns) that netcubed renews while it runs: if netcubed dies
 * without clearing `active`, copying stops when the lease runs out. While active, a
 * packet is copied when its direction is wanted and it matches the filter
 * (addresses by prefix, ports, protocol, family; every field set must match),
 * within the capture's rate. The copy is one record of the slow path's layout
 * (struct nc_pkt_rec: the direction as in_port, the session in user[0], the
 * packet's first snap_len bytes, stamped with bpf_ktime_get_ns) in the cube's
 * own ring, capture_ring: a capture never
 * takes room from the controllers' packets in the host's ring, and a session that
 * reads too slowly only fills its own. What the rate or a full ring refuses is
 * counted (capture_counters), never waited for.
 */
#include <netcube/netcube.h>
#include <netcube/flow.h>

enum capture_limits {
	CAPTURE_RING_BYTES = 1 << 22, /* about 2,700 full-size records, 24,000 short ones */
	CAPTURE_ADDRS      = 2,
	CAPTURE_PORTS      = 2,
};

/* Which of a packet's addresses or ports a filter field is compared with. */
enum capture_side {
	CAPTURE_UNUSED = 0,
	CAPTURE_SRC    = 1,
	CAPTURE_DST    = 2,
	CAPTURE_EITHER = 3, /* tcpdump's "host" and "port" */
};

struct capture_addr {
	nc_ipv6_t addr;  /* IPv4 as ::ffff:a.b.c.d, as struct nc_flow keeps it */
	__u8 prefix_len; /* of the IPv6 form: an IPv4 /24 is 120 */
	__u8 side;       /* enum capture_side */
	__u16 pad;
};

struct capture_port {
	nc_port_t port;
	__u8 side;       /* enum capture_side */
	__u8 pad;
};

/* What to capture (capture_config[0]), written by netcubed. */
struct capture_config {
	__u32 active;     /* a session reads: copy what matches */
	__u32 pad;
	__u64 lease_until_ns; /* and only until then (bpf_ktime_get_ns) */
	__u32 session;    /* stamped on its records (user[0]): one left from an earlier session is told apart */
	__u32 snap_len;   /* bytes of a packet copied, 1..NC_PKT_MAX */
	__u32 rate;       /* packets copied a second at most; 0: no limit */
	__u32 burst;      /* packets the rate lets through at once */
	__u8 directions;  /* bit 0: ingress, bit 1: egress (enum nc_direction) */
	__u8 family;      /* 0: any, else enum nc_family */
	__u8 match_proto; /* whether proto must match */
	__u8 proto;       /* the upper-layer protocol */
	struct capture_addr addrs[CAPTURE_ADDRS];
	struct capture_port ports[CAPTURE_PORTS];
};

/* What the data plane did with the packets of a session (per CPU). */
struct capture_counters {
	__u64 captured;  /* copied into capture_ring */
	__u64 over_rate; /* matched, past the rate: not copied */
	__u64 ring_full; /* matched, no room in capture_ring: the session read too slowly */
};

/* The capture's settings. */
NC_TABLE(capture_config, BPF_MAP_TYPE_ARRAY, __u32, struct capture_config, 1, NC_SCOPE_CUBE);
/* The rate's token bucket (the slow path's layout, on the capture's own rate). */
NC_TABLE(capture_bucket, BPF_MAP_TYPE_ARRAY, __u32, struct nc_pkt_bucket, 1, NC_SCOPE_CUBE);
/* Packets copied and not copied, by why. */
NC_TABLE(capture_counters, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct capture_counters, 1, NC_SCOPE_CUBE);

/* Copies of captured packets (struct nc_pkt_rec), read by netcubed. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CAPTURE_RING_BYTES);
} capture_ring SEC(".maps");

/* Whether the first @len bits of @a and @b agree. */
static __always_inline int capture_prefix_match(const nc_ipv6_t *a, const nc_ipv6_t *b, __u32 len)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 bits = len > 32 * i ? len - 32 * i : 0;
		__u32 mask;

		if (bits == 0)
			break;
		mask = bits >= 32 ? 0xffffffff : ~(0xffffffffu >> bits);
		if ((a->word[i] ^ b->word[i]) & bpf_htonl(mask))
			return 0;
	}
	return 1;
}

static __always_inline int capture_side_match(__u8 side, int src, int dst)
{
	switch (side) {
	case CAPTURE_SRC:
		return src;
	case CAPTURE_DST:
		return dst;
	case CAPTURE_EITHER:
		return src || dst;
	}
	return 1;
}

/* Whether the packet matches every field of the filter that is set. */
static __always_inline int capture_matches(struct nc_ctx *ctx, const struct capture_config *cfg)
{
	struct nc_flow f;
	int i;

	if (!cfg->family && !cfg->match_proto && !cfg->addrs[0].side && !cfg->addrs[1].side && !cfg->ports[0].side &&
	    !cfg->ports[1].side)
		return 1;
	if (nc_flow_parse(ctx, &f) != NC_FLOW_IP)
		return 0;
	if (cfg->family && cfg->family != f.family)
		return 0;
	if (cfg->match_proto && cfg->proto != f.proto)
		return 0;
#pragma unroll
	for (i = 0; i < CAPTURE_ADDRS; i++) {
		const struct capture_addr *a = &cfg->addrs[i];

		if (a->side && !capture_side_match(a->side, capture_prefix_match(&f.saddr, &a->addr, a->prefix_len),
						   capture_prefix_match(&f.daddr, &a->addr, a->prefix_len)))
			return 0;
	}
#pragma unroll
	for (i = 0; i < CAPTURE_PORTS; i++) {
		const struct capture_port *p = &cfg->ports[i];

		/* Ports only of TCP and UDP: an ICMP echo's identifier is no port here. */
		if (p->side && ((f.proto != NC_IPPROTO_TCP && f.proto != NC_IPPROTO_UDP) || f.fragment ||
				!capture_side_match(p->side, f.sport == p->port, f.dport == p->port)))
			return 0;
	}
	return 1;
}

/* The capture's token bucket: the slow path's, on the capture's own rate. */
static __always_inline int capture_admit(const struct capture_config *cfg)
{
	struct nc_pkt_bucket *b;
	__u32 zero = 0;

	if (!cfg->rate)
		return 1;
	b = bpf_map_lookup_elem(&capture_bucket, &zero);
	return b && nc_bucket_take(b, cfg->rate, cfg->burst);
}

/* Fills @r, reserved with room for @room bytes, with the packet's first @snap
 * bytes, and submits it. The clock is read first, so that records whose
 * reservations follow each other (the ring's order) are stamped in that order
 * as nearly as CPUs racing for the ring allow.
 */
static __always_inline void capture_submit(struct nc_ctx *ctx, struct nc_md *md, struct nc_pkt_rec *r, __u32 session,
					   __u64 len, __u64 snap, __u64 room)
{
	r->ts_ns = bpf_ktime_get_ns();
	nc_pkt_fill(ctx, md, r, len, snap, room);
	r->reason = 0;
	r->user[0] = session;
	r->user[1] = 0;
	r->user[2] = 0;
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void capture_copy(struct nc_ctx *ctx, struct nc_md *md, const struct capture_config *cfg)
{
	struct capture_counters *n;
	struct nc_pkt_rec *r;
	__u32 zero = 0;
	__u64 len = nc_pkt_len(ctx), snap = cfg->snap_len;

	n = bpf_map_lookup_elem(&capture_counters, &zero);
	if (!n)
		return;
	if (!capture_admit(cfg)) {
		n->over_rate++;
		return;
	}
	/* The smaller record when what is kept fits it (as nc_to_controller does). */
	if ((len < snap ? len : snap) <= NC_PKT_SHORT) {
		r = bpf_ringbuf_reserve(&capture_ring, NC_PKT_REC_HDR + NC_PKT_SHORT, 0);
		if (r)
			capture_submit(ctx, md, r, cfg->session, len, snap, NC_PKT_SHORT);
	} else {
		r = bpf_ringbuf_reserve(&capture_ring, sizeof(*r), 0);
		if (r)
			capture_submit(ctx, md, r, cfg->session, len, snap, NC_PKT_MAX);
	}
	if (r)
		n->captured++;
	else
		n->ring_full++;
}

static __always_inline int capture(struct nc_ctx *ctx, struct nc_md *md)
{
	struct capture_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&capture_config, &zero);
	if (cfg && cfg->active && bpf_ktime_get_ns() < cfg->lease_until_ns && md->in_port < 2 && (cfg->directions & (1 << md->in_port)) && capture_matches(ctx, cfg))
		capture_copy(ctx, md, cfg);
	return nc_forward(ctx, md);
}

NC_TRANSPARENT_CUBE(capture);
