/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The framework's host-wide maps. Each cube object declares all of them; when
 * the runtime loads a cube it hands it the host's own instance of each (so the
 * sizes below only matter for objects loaded outside netcube). The per-cube
 * maps are in cube.h, a netdev entry's in netdev.h.
 */
#ifndef __NETCUBE_MAPS_H
#define __NETCUBE_MAPS_H

#include "abi.h"

/* --- host-wide: one per host, shared by every cube --- */

/* The generation of peer words that packets entering netcube now follow (bit 0).
 * A global in a section of its own, which libbpf makes a one-entry array map and
 * the runtime points at the host's (an mmap-able array of one u64, which the
 * daemon flips with one store): reading it is one load, where a map lookup costs
 * a dozen instructions, a nanosecond on every packet that enters.
 */
volatile __u64 nc_gen SEC(".data.nc_gen");

/* Data-plane log records (struct nc_log_rec), read by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} nc_log_rb SEC(".maps");

/* Slow-path packets (struct nc_pkt_rec), read by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} nc_pkt_rb SEC(".maps");

/* Framework errors by cause (enum nc_error). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NC_ERR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} nc_errors SEC(".maps");

static __always_inline __u32 nc_current_gen(void)
{
	return nc_gen & NC_MD_F_GEN;
}

static __always_inline void nc_count_error(enum nc_error err)
{
	__u32 key = err;
	__u64 *n = bpf_map_lookup_elem(&nc_errors, &key);

	if (n)
		*n += 1;
}

#endif /* __NETCUBE_MAPS_H */
