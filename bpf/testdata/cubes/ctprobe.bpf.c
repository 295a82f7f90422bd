// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* ctprobe: a cube for the connection-tracking tests. Every packet is tracked and
 * its verdict left in the metadata (user[0] the state, user[1] the direction,
 * user[2] the flow's TCP state, or 0xff without an entry), then marked (verdict
 * 3) for the test to read. A new flow is committed unless ctprobe_refuse[0] says
 * not to, as a firewall would for a packet it drops.
 */
#include <netcube/netcube.h>
#include <netcube/conntrack.h>

#define CTPROBE_VERDICT_MARK 3

NC_CONNTRACK(ctprobe_flows, 1024);
/* [0] != 0: commit nothing. */
NC_TABLE(ctprobe_refuse, BPF_MAP_TYPE_ARRAY, __u32, __u32, 1, NC_SCOPE_CUBE);

static __always_inline int ctprobe(struct nc_ctx *ctx, struct nc_md *md)
{
	struct nc_flow flow;
	struct nc_ct ct;
	__u32 zero = 0, *refuse;
	int parsed = nc_flow_parse(ctx, &flow);

	if (parsed == NC_FLOW_MALFORMED)
		ct.state = NC_CT_INVALID, ct.tracked = 0, ct.dir = 0;
	else if (parsed == NC_FLOW_NOT_IP)
		ct.state = NC_CT_UNTRACKED, ct.tracked = 0, ct.dir = 0;
	else
		nc_ct_lookup(ctx, ctprobe_flows, &flow, &ct);
	refuse = bpf_map_lookup_elem(&ctprobe_refuse, &zero);
	if (ct.state == NC_CT_NEW && !(refuse && *refuse))
		nc_ct_commit(ctprobe_flows, &flow, &ct);
	md->user[0] = ct.state;
	md->user[1] = ct.dir;
	md->user[2] = ct.tracked ? ct.entry.tcp : 0xff;
	nc_md_store(ctx, md);
	return CTPROBE_VERDICT_MARK;
}

NC_CUBE(ctprobe);
