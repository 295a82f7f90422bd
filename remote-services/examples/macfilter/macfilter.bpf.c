// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* macfilter: the cube of the "write a new cube" tutorial (remote-services/README.md).
 * Two ports; a frame goes out of the other one, unless its source MAC is blocked.
 * A source the control plane has not seen yet goes to it first.
 */
#include <netcube/netcube.h>

struct mac_key {
	__u8 mac[6];
	__u16 pad;
};

/* In-port -> the port frames leave by. */
NC_TABLE(wiring, BPF_MAP_TYPE_ARRAY, __u32, __u32, NC_MAX_PORTS, NC_SCOPE_CUBE);
/* Source MACs whose frames are dropped. */
NC_TABLE(blocked, BPF_MAP_TYPE_HASH, struct mac_key, __u32, 1024, NC_SCOPE_CUBE);
/* Source MACs the control plane has seen, and when. */
NC_TABLE(seen, BPF_MAP_TYPE_HASH, struct mac_key, __u64, 4096, NC_SCOPE_CUBE);

static __always_inline int macfilter(struct nc_ctx *ctx, struct nc_md *md)
{
	struct mac_key key = {};
	struct nc_cursor c;
	struct ethhdr *eth;
	__u32 in = md->in_port, *out;
	__u16 vlan;

	nc_cursor_init(&c, ctx);
	out = bpf_map_lookup_elem(&wiring, &in);
	if (!out || nc_parse_eth(&c, &eth, &vlan) < 0)
		return nc_drop(ctx, md);
	nc_mac_copy(key.mac, eth->h_source);
	if (bpf_map_lookup_elem(&blocked, &key))
		return nc_drop(ctx, md);
	if (!bpf_map_lookup_elem(&seen, &key))
		return nc_to_controller(ctx, md, 1);
	return nc_redirect(ctx, md, *out);
}

NC_CUBE(macfilter);
