// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* bridge: an Ethernet bridge. It learns source MACs (per VLAN) in the fast path,
 * forwards known unicast out of the learnt port, and floods the rest to every port
 * of the frame's VLAN but the one it came in on. Entries older than the aging time
 * count as unknown here; the control plane removes them. Ports are plain (VLAN
 * unaware), access (untagged, one VLAN) or trunk (tagged, with a native VLAN). A
 * trunk carries every VLAN, or with BRIDGE_PORT_F_ALLOWED only its native VLAN and
 * those of its set in bridge_trunk_vlans: a frame of another VLAN is dropped
 * coming in on it and never sent out of it.
 *
 * Flooding: under TC the fast path sends a copy out of each netdev port and the
 * frame itself into at most one port whose peer is another cube (a tail call does
 * not return). Under XDP, which cannot copy a frame, and when several ports lead to
 * cubes, the frame goes to the control plane, which floods it with packet-outs.
 */
#include <netcube/netcube.h>

enum bridge_port_mode {
	BRIDGE_PORT_PLAIN  = 0,
	BRIDGE_PORT_ACCESS = 1,
	BRIDGE_PORT_TRUNK  = 2,
};

/* Why a frame goes to the control plane; md->user[0] holds its VLAN. */
enum bridge_reason {
	BRIDGE_REASON_FLOOD = 1,
};

enum bridge_port_flags {
	BRIDGE_PORT_F_ALLOWED = 1, /* trunk: only the VLANs of its bridge_trunk_vlans set */
};

struct bridge_port {
	enum bridge_port_mode mode;
	__u16 vlan;  /* access: its VLAN; trunk: the native VLAN (0: none) */
	__u16 flags; /* enum bridge_port_flags */
};

/* A set of VLANs, one bit each: VLAN v is bit v % 64 of word v / 64. */
struct bridge_vlan_set {
	__u64 word[64];
};

struct fdb_key {
	nc_mac_t mac;
	__u16 vlan;
};

struct fdb_entry {
	__u32 port;
	__u32 pad;
	__u64 seen_ns;
};

struct bridge_config {
	__u64 aging_ns; /* 0: 300 s */
};

/* MAC and VLAN -> port it was last seen on, and when. */
NC_TABLE(fdb, BPF_MAP_TYPE_HASH, struct fdb_key, struct fdb_entry, 4096, NC_SCOPE_CUBE);
/* Port -> its VLAN mode. */
NC_TABLE(bridge_ports, BPF_MAP_TYPE_ARRAY, __u32, struct bridge_port, NC_MAX_PORTS, NC_SCOPE_CUBE);
/* Port -> the VLANs its trunk carries besides the native one (BRIDGE_PORT_F_ALLOWED). */
NC_TABLE(bridge_trunk_vlans, BPF_MAP_TYPE_ARRAY, __u32, struct bridge_vlan_set, NC_MAX_PORTS, NC_SCOPE_CUBE);
/* Settings of the bridge ([0]). */
NC_TABLE(bridge_config, BPF_MAP_TYPE_ARRAY, __u32, struct bridge_config, 1, NC_SCOPE_CUBE);

#define DEFAULT_AGING_NS (300ULL * 1000000000ULL)
/* Re-learning a MAC on the same port at most this often keeps the FDB's cache
 * lines out of every packet's way.
 */
#define LEARN_REFRESH_NS 1000000000ULL

/* Whether trunk @p (port @port) carries tagged frames of @vlan. */
static __always_inline bool trunk_carries(const struct bridge_port *p, __u32 port, int vlan)
{
	struct bridge_vlan_set *set;

	if (!(p->flags & BRIDGE_PORT_F_ALLOWED))
		return true;
	set = bpf_map_lookup_elem(&bridge_trunk_vlans, &port);
	return set && (set->word[(vlan >> 6) & 63] >> (vlan & 63)) & 1;
}

/* The VLAN of a frame arriving on @p (port @port) with tag @tag (-1: untagged); -1 refuses it. */
static __always_inline int classify(const struct bridge_port *p, __u32 port, int tag)
{
	switch (p->mode) {
	case BRIDGE_PORT_ACCESS:
		return tag < 0 ? p->vlan : -1;
	case BRIDGE_PORT_TRUNK:
		if (tag < 0)
			return p->vlan ? p->vlan : -1;
		return tag == p->vlan || trunk_carries(p, port, tag) ? tag : -1;
	default:
		return tag < 0 ? 0 : tag;
	}
}

/* How a frame of @vlan leaves through @p (port @port): -1 not at all, 0 untagged, 1 tagged. */
static __always_inline int egress_tagging(const struct bridge_port *p, __u32 port, int vlan)
{
	switch (p->mode) {
	case BRIDGE_PORT_ACCESS:
		return p->vlan == vlan ? 0 : -1;
	case BRIDGE_PORT_TRUNK:
		if (vlan == p->vlan)
			return 0;
		return trunk_carries(p, port, vlan) ? 1 : -1;
	default:
		return vlan == 0 ? 0 : 1;
	}
}

/* --- VLAN tags: in the frame under XDP, in skb metadata under TC --- */

#ifdef NC_HOOK_XDP
static __always_inline int frame_tag(struct xdp_md *ctx)
{
	struct nc_cursor c;
	struct ethhdr *eth;
	__u16 vid;

	nc_cursor_init(&c, ctx);
	if (nc_parse_eth(&c, &eth, &vid) < 0)
		return -2;
	/* Either tag type, as the kernel takes either out before TC sees the frame. */
	return eth->h_proto == bpf_htons(NC_ETH_P_8021Q) || eth->h_proto == bpf_htons(NC_ETH_P_8021AD) ? vid : -1;
}

static __always_inline int tag_push(struct xdp_md *ctx, __u16 vid)
{
	void *data, *end;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct nc_vlan_hdr)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + sizeof(struct nc_vlan_hdr) > end)
		return -1;
	/* The MACs move to the new front; the ethertype stays where it was, now
	 * behind the tag.
	 */
	__builtin_memmove(data, data + sizeof(struct nc_vlan_hdr), 2 * NC_ETH_ALEN);
	((struct ethhdr *)data)->h_proto = bpf_htons(NC_ETH_P_8021Q);
	((struct nc_vlan_hdr *)(data + 2 * NC_ETH_ALEN + 2))->tci = bpf_htons(vid);
	return 0;
}

static __always_inline int tag_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 macs[2 * NC_ETH_ALEN];

	if (data + sizeof(struct ethhdr) + sizeof(struct nc_vlan_hdr) > end)
		return -1;
	__builtin_memcpy(macs, data, sizeof(macs));
	__builtin_memcpy(data + sizeof(struct nc_vlan_hdr), macs, sizeof(macs));
	return bpf_xdp_adjust_head(ctx, sizeof(struct nc_vlan_hdr));
}
#else
/* The kernel takes the tag out of the frame before TC ingress (skb->vlan_tci). */
static __always_inline int frame_tag(struct __sk_buff *ctx)
{
	return ctx->vlan_present ? (ctx->vlan_tci & 0x0fff) : -1;
}

static __always_inline int tag_push(struct __sk_buff *ctx, __u16 vid)
{
	return bpf_skb_vlan_push(ctx, bpf_htons(NC_ETH_P_8021Q), vid);
}

static __always_inline int tag_pop(struct __sk_buff *ctx)
{
	return bpf_skb_vlan_pop(ctx);
}
#endif

/* Makes the frame tagged (@want 1) or untagged (0) with @vlan; *tagged tracks it. */
static __always_inline int set_tagging(struct nc_ctx *ctx, int *tagged, int want, int vlan)
{
	if (want == *tagged)
		return 0;
	*tagged = want;
	return want ? tag_push(ctx, vlan) : tag_pop(ctx);
}

static __always_inline void learn(const __u8 *src, int vlan, __u32 port, __u64 now)
{
	struct fdb_key key = { .vlan = vlan };
	struct fdb_entry *e, fresh = { .port = port };

	if (src[0] & 1) /* a group address is never a source */
		return;
	nc_mac_copy(key.mac, src);
	e = bpf_map_lookup_elem(&fdb, &key);
	if (e && e->port == port && (__s64)(now - e->seen_ns) < (__s64)LEARN_REFRESH_NS)
		return;
	fresh.seen_ns = now;
	bpf_map_update_elem(&fdb, &key, &fresh, BPF_ANY);
}

static __always_inline __u64 aging_ns(void)
{
	__u32 zero = 0;
	struct bridge_config *cfg = bpf_map_lookup_elem(&bridge_config, &zero);

	return cfg && cfg->aging_ns ? cfg->aging_ns : DEFAULT_AGING_NS;
}

static __always_inline int flood_slow(struct nc_ctx *ctx, struct nc_md *md, int vlan)
{
	md->user[0] = vlan;
	return nc_to_controller(ctx, md, BRIDGE_REASON_FLOOD);
}

#ifdef NC_HOOK_TC
struct flood_walk {
	struct __sk_buff *ctx;
	struct nc_md *md;
	int vlan;
	int tagged;
	__u32 kind;      /* the peers this walk is about: NC_PEER_CUBE, then NC_PEER_NETDEV */
	int cubes;
	int cube_port;
	int cube_tagging;
};

/* One port of a flood (bpf_loop callback, so the verifier sees it once). */
static long flood_port(__u32 port, struct flood_walk *w)
{
	struct bridge_port *bp;
	int t;

	if (port == w->md->in_port || nc_peer_kind(nc_port_peer(w->md, port)) != w->kind)
		return 0;
	bp = bpf_map_lookup_elem(&bridge_ports, &port);
	if (!bp || (t = egress_tagging(bp, port, w->vlan)) < 0)
		return 0;
	if (w->kind == NC_PEER_CUBE) {
		w->cubes++;
		w->cube_port = port;
		w->cube_tagging = t;
	} else if (!set_tagging(w->ctx, &w->tagged, t, w->vlan)) {
		nc_clone_out(w->ctx, w->md, port);
	}
	return 0;
}

static __always_inline int flood(struct nc_ctx *ctx, struct nc_md *md, int vlan, int tagged)
{
	struct flood_walk w = { .ctx = ctx, .md = md, .vlan = vlan, .tagged = tagged, .kind = NC_PEER_CUBE, .cube_port = -1 };

	/* The ports that lead to cubes first: with more than one, the control plane floods. */
	bpf_loop(NC_MAX_PORTS, flood_port, &w, 0);
	if (w.cubes > 1)
		return flood_slow(ctx, md, vlan);
	w.kind = NC_PEER_NETDEV;
	bpf_loop(NC_MAX_PORTS, flood_port, &w, 0);
	if (w.cube_port < 0)
		return NC_ACT_DROP; /* every copy is out: the original is done with */
	if (set_tagging(ctx, &w.tagged, w.cube_tagging, vlan))
		return nc_drop(ctx, md);
	return nc_redirect(ctx, md, w.cube_port);
}
#else
static __always_inline int flood(struct nc_ctx *ctx, struct nc_md *md, int vlan, int tagged)
{
	return flood_slow(ctx, md, vlan);
}
#endif

static __always_inline int bridge(struct nc_ctx *ctx, struct nc_md *md)
{
	struct bridge_port *in, *out;
	struct nc_cursor c;
	struct ethhdr *eth;
	struct fdb_key dst = {};
	struct fdb_entry *e;
	__u8 src[NC_ETH_ALEN];
	__u32 in_port = md->in_port, out_port;
	int tag, vlan, tagged, t;
	__u16 vid;
	__u64 now;

	in = bpf_map_lookup_elem(&bridge_ports, &in_port);
	nc_cursor_init(&c, ctx);
	if (!in || nc_parse_eth(&c, &eth, &vid) < 0 || (tag = frame_tag(ctx)) < -1)
		return nc_drop(ctx, md);
	vlan = classify(in, in_port, tag);
	if (vlan < 0)
		return nc_drop(ctx, md);
	tagged = tag >= 0;
	nc_mac_copy(src, eth->h_source);
	nc_mac_copy(dst.mac, eth->h_dest);
	dst.vlan = vlan;
	/* Read once, the clock is not cheap under a hypervisor; another CPU may
	 * have stamped an entry after it (hence the signed ages below).
	 */
	now = bpf_ktime_get_ns();
	learn(src, vlan, in_port, now);

	if (dst.mac[0] & 1)
		return flood(ctx, md, vlan, tagged);
	e = bpf_map_lookup_elem(&fdb, &dst);
	if (!e || (__s64)(now - e->seen_ns) > (__s64)aging_ns())
		return flood(ctx, md, vlan, tagged);
	if (e->port == in_port)
		return nc_drop(ctx, md);
	out_port = e->port;
	out = bpf_map_lookup_elem(&bridge_ports, &out_port);
	if (!out || (t = egress_tagging(out, out_port, vlan)) < 0 || set_tagging(ctx, &tagged, t, vlan))
		return nc_drop(ctx, md);
	return nc_redirect(ctx, md, out_port);
}

NC_CUBE(bridge);
