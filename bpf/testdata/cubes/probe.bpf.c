// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* probe: a cube for data-plane tests whose behaviour a table chooses, so that one
 * object exercises every framework helper. For each in-port, probe_actions says
 * what to do; PROBE_MARK returns a verdict no helper returns (3), leaving the
 * metadata with the packet for the test to read (a cube run by its netdev's
 * entry keeps it on the stack otherwise).
 */
#include <netcube/netcube.h>

enum probe_op {
	PROBE_DROP       = 0,
	PROBE_PASS       = 1,
	PROBE_REDIRECT   = 2, /* nc_redirect(arg) */
	PROBE_CALL       = 3, /* nc_call(arg) */
	PROBE_CONTROLLER = 4, /* nc_to_controller(reason = arg) */
	PROBE_MARK       = 5,
	PROBE_FORWARD    = 6, /* nc_forward */
};

#define PROBE_VERDICT_MARK 3

struct probe_action {
	enum probe_op op;
	__u32 arg;
	__u32 user0; /* written to md->user[0] first, when not 0 */
	__u32 log;   /* log the packet at level NC_LOG_INFO first */
};

/* In-port -> what to do. */
NC_TABLE(probe_actions, BPF_MAP_TYPE_ARRAY, __u32, struct probe_action, NC_MAX_PORTS, NC_SCOPE_CUBE);
/* Packets micro-cube 1 saw: private to it. */
NC_TABLE(probe_calls, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1, NC_SCOPE_PRIVATE);
/* Packets every probe cube on the host saw: a host table. */
NC_TABLE(probe_host, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1, NC_SCOPE_HOST);

static __always_inline int probe(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 in = md->in_port, zero = 0;
	struct probe_action *a = bpf_map_lookup_elem(&probe_actions, &in);
	__u64 *seen = bpf_map_lookup_elem(&probe_host, &zero);

	if (seen)
		__sync_fetch_and_add(seen, 1);
	if (!a)
		return nc_drop(ctx, md);
	if (a->user0)
		md->user[0] = a->user0;
	if (a->log)
		nc_log(ctx, NC_LOG_INFO, "probe: in-port %u user %x from %I", md->in_port, md->user[0], 0x0100000a);
	switch (a->op) {
	case PROBE_PASS:
		return nc_pass(ctx, md);
	case PROBE_REDIRECT:
		return nc_redirect(ctx, md, a->arg);
	case PROBE_CALL:
		return nc_call(ctx, md, a->arg);
	case PROBE_CONTROLLER:
		return nc_to_controller(ctx, md, a->arg);
	case PROBE_MARK:
		nc_md_store(ctx, md);
		return PROBE_VERDICT_MARK;
	case PROBE_FORWARD:
		return nc_forward(ctx, md);
	default:
		return nc_drop(ctx, md);
	}
}

/* Micro-cube 1: counts, derives a word from the caller's, and marks. */
static __always_inline int probe_micro(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 zero = 0;
	__u64 *calls = bpf_map_lookup_elem(&probe_calls, &zero);

	if (calls)
		*calls += 1;
	md->user[1] = md->user[0] + 1;
	nc_md_store(ctx, md);
	return PROBE_VERDICT_MARK;
}

NC_CUBE(probe);
NC_MICROCUBE(1, probe_micro);
