// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* simpleforwarder: a static port-to-port forwarder, as the ANCS'19 pcn-simplefwd.
 * Its control plane fills one table: what to do with packets arriving on a port.
 */
#include <netcube/netcube.h>

enum fwd_action {
	FWD_DROP       = 0,
	FWD_FORWARD    = 1,
	FWD_CONTROLLER = 2,
};

struct fwd_entry {
	enum fwd_action action;
	__u32 out_port;
};

/* In-port -> action (and out-port when forwarding). */
NC_TABLE(actions, BPF_MAP_TYPE_ARRAY, __u32, struct fwd_entry, NC_MAX_PORTS, NC_SCOPE_CUBE);

static __always_inline int simplefwd(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 in = md->in_port;
	struct fwd_entry *e = bpf_map_lookup_elem(&actions, &in);

	if (!e)
		return nc_drop(ctx, md);
	switch (e->action) {
	case FWD_FORWARD:
		return nc_redirect(ctx, md, e->out_port);
	case FWD_CONTROLLER:
		return nc_to_controller(ctx, md, 0);
	default:
		return nc_drop(ctx, md);
	}
}

NC_CUBE(simplefwd);
