// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* The netdev entry without a cube of its own (see netcube/netdev.h): the general
 * way in alone, every packet tail-called into the netdev's peer. The daemon
 * attaches it where no cube's fused entry could be loaded; the benchmarks
 * measure what fusing saves against it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netcube/abi.h>
#include <netcube/hook.h>
#include <netcube/maps.h>
#include <netcube/deliver.h>
#include <netcube/netdev.h>

SEC(NC_SEC) int nc_netdev(struct nc_ctx *ctx)
{
	__u32 gen = nc_current_gen();

	return nc_netdev_deliver(ctx, gen, nc_netdev_word(gen));
}

char _license[] SEC("license") = "GPL";
