/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* What a cube is to the framework: its id, its per-cube maps, its entry points,
 * and the verdicts a cube returns. Cube authors use the macros and nc_* helpers
 * and never see slots, metadata layout or prog arrays.
 */
#ifndef __NETCUBE_CUBE_H
#define __NETCUBE_CUBE_H

#include "abi.h"
#include "hook.h"
#include "maps.h"
#include "deliver.h"
#include "netdev.h"

/* Set by the runtime before load. */
const volatile __u32 nc_cube_id = 0;

/* --- per-cube maps: created with each cube, shared by its micro-cubes --- */

/* Peer of each port, per generation: [gen * NC_MAX_PORTS + port] (encoded, see
 * enum nc_peer_kind). A global in a section of its own, which libbpf makes a
 * one-entry mmap-able array map, created with each cube: the daemon writes a word
 * with one atomic store, and reading one costs a load where a map lookup costs a
 * dozen instructions.
 */
volatile __u64 nc_ports[NC_GENERATIONS * NC_MAX_PORTS] SEC(".data.nc_ports");

/* Port @port's word of generation @gen (port < NC_MAX_PORTS). The mask changes
 * nothing: it is what the verifier bounds the access by, as clang checks the
 * port on another copy of the register, and in assembly, which clang cannot
 * drop as redundant. */
static __always_inline __u64 nc_port_word(__u32 gen, __u32 port)
{
	__u64 i = gen * NC_MAX_PORTS + port;

	asm volatile("%[i] &= %[mask]" : [i] "+r"(i) : [mask] "i"(NC_GENERATIONS * NC_MAX_PORTS - 1));
	return nc_ports[i];
}

/* Packet and byte counters of every port, all in one per-CPU value ([0]): a
 * program looks them up once, at its start, and counts its packet in and out on
 * that (two lookups cost half a nanosecond more a cube here). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nc_cube_stats);
} nc_stats SEC(".maps");

/* The entry program of each port's cube peer, per generation, at the index of
 * the port's word in nc_ports: written by the daemon with the word. nc_redirect
 * jumps through it with one call site per slot (a direct jump). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NC_GENERATIONS * NC_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} nc_peer_progs SEC(".maps");

/* The cube's own programs by micro-cube index (0 is its entry), for nc_call. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NC_MAX_MICROCUBES);
	__type(key, __u32);
	__type(value, __u32);
} nc_micro SEC(".maps");

/* Run-time settings of the cube (log level, slow-path rate), written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nc_cube_cfg);
} nc_cfg SEC(".maps");

/* Per-port counters are always on; a cube built with -DNC_PORT_STATS=0 has none
 * (only for the benchmark that measures what they cost).
 */
#ifndef NC_PORT_STATS
#define NC_PORT_STATS 1
#endif

/* What the framework keeps next to a packet's metadata while one of its programs
 * runs, behind the struct nc_md a cube is handed: the cube's counters, looked
 * up once. Only the entry points (__NC_PROGRAM, __NC_NETDEV_PROGRAM) make an
 * md, so every md a helper gets sits in one of these.
 */
struct __nc_frame {
	struct nc_md md;
	struct nc_cube_stats *stats;
};

static __always_inline struct nc_cube_stats *nc_lookup_stats(void)
{
	__u32 zero = 0;

	return NC_PORT_STATS ? bpf_map_lookup_elem(&nc_stats, &zero) : NULL;
}

/* The counters of @port, or NULL. */
static __always_inline struct nc_port_stats *nc_port_stats(const struct nc_md *md, __u32 port)
{
	struct nc_cube_stats *all = ((const struct __nc_frame *)md)->stats;
	__u64 i = port;

	if (!all || port >= NC_MAX_PORTS)
		return NULL;
	/* As in nc_port_word: the bound the verifier sees. */
	asm volatile("%[i] &= %[mask]" : [i] "+r"(i) : [mask] "i"(NC_MAX_PORTS - 1));
	return &all->port[i];
}

static __always_inline struct nc_cube_cfg *nc_cube_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nc_cfg, &zero);
}

/* --- verdicts ---
 *
 * A packet that enters a cube on port p is counted on p (rx), then once more by
 * how it leaves: on the port it is sent out of (tx), or as one of p's drops or
 * to_controller. nc_pass and a cube's own return values are not counted.
 */

static __always_inline int nc_drop(struct nc_ctx *ctx, struct nc_md *md)
{
	struct nc_port_stats *s = nc_port_stats(md, md->in_port);

	if (s)
		s->drops++;
	return NC_ACT_DROP;
}

/* Counts the packet as sent out of @port. */
static __always_inline void nc_count_tx(struct nc_ctx *ctx, const struct nc_md *md, __u32 port)
{
	struct nc_port_stats *s = nc_port_stats(md, port);

	if (s) {
		s->tx_packets++;
		s->tx_bytes += nc_pkt_len(ctx);
	}
}

/* Send the packet out of @port, to whatever the port's peer is. The next cube
 * starts with clean metadata: a cube's words are its own. A port out of range or
 * without a peer drops the packet, counted as a drop of the port it came in on.
 */
static __always_inline int nc_redirect(struct nc_ctx *ctx, struct nc_md *md, __u32 port)
{
	__u32 gen = md->flags & NC_MD_F_GEN;
	__u64 peer;

	if (port >= NC_MAX_PORTS)
		return nc_drop(ctx, md);
	peer = nc_port_word(gen, port);
	if (nc_peer_kind(peer) == NC_PEER_NONE)
		return nc_drop(ctx, md);
	nc_count_tx(ctx, md, port);
	if (nc_peer_kind(peer) != NC_PEER_CUBE)
		return nc_deliver_out(ctx, peer);
	md->reason = 0;
	md->flags &= NC_MD_F_GEN;
	md->user[0] = 0;
	md->user[1] = 0;
	md->user[2] = 0;
	if (nc_enter_cube(ctx, md, peer))
		return NC_ACT_DROP;
	nc_jump_port(ctx, &nc_peer_progs, gen, port);
	return nc_jump_failed();
}

/* Was this packet sent by the cube's own control plane (packet-out)? */
static __always_inline int nc_is_packet_out(const struct nc_md *md)
{
	return md->flags & NC_MD_F_PACKET_OUT;
}

/* Hand the packet to the kernel's stack of the netdev it arrived on. */
static __always_inline int nc_pass(struct nc_ctx *ctx, struct nc_md *md)
{
	return NC_ACT_PASS;
}

/* Transparent cubes: let the packet continue on its way, in its direction. */
static __always_inline int nc_forward(struct nc_ctx *ctx, struct nc_md *md)
{
	return nc_redirect(ctx, md, md->in_port);
}

/* Continue in micro-cube @index of this cube, with the same metadata. An index
 * out of range or an empty slot drops the packet and counts NC_ERR_TAIL_CALL.
 */
static __always_inline int nc_call(struct nc_ctx *ctx, struct nc_md *md, __u32 index)
{
	if (index >= NC_MAX_MICROCUBES || nc_md_store(ctx, md))
		return nc_jump_failed();
	nc_jump_8(ctx, &nc_micro, index);
	return nc_jump_failed();
}

/* --- entry points ---
 *
 * A packet is only ever handed to a cube by the framework (a netdev entry, another
 * cube, nc_call, packet-out), which stamps the metadata with that cube's id.
 * Anything else (no metadata area under XDP, someone else's skb->cb under TC,
 * which is always there) is not ours: dropped and counted as NC_ERR_NO_METADATA.
 * nc_cube_id is a load-time constant, so the check is one compare against an
 * immediate.
 */

static __always_inline void nc_count_rx(struct nc_ctx *ctx, const struct nc_md *md)
{
	struct nc_port_stats *s = nc_port_stats(md, md->in_port);

	if (s) {
		s->rx_packets++;
		s->rx_bytes += nc_pkt_len(ctx);
	}
}

#define __NC_PROGRAM(prog, handler, count_rx)					\
SEC(NC_SEC) int prog(struct nc_ctx *ctx)					\
{										\
	struct __nc_frame f;							\
										\
	if (nc_md_load(ctx, &f.md) || f.md.cube_id != nc_cube_id) {		\
		nc_count_error(NC_ERR_NO_METADATA);				\
		return NC_ACT_DROP;						\
	}									\
	f.stats = nc_lookup_stats();						\
	if (count_rx)								\
		nc_count_rx(ctx, &f.md);					\
	return handler(ctx, &f.md);						\
}

/* The cube's entry fused with a netdev entry (netdev.h): attached to a netdev
 * whose peer is this cube, it runs the cube on packets straight from the wire,
 * with metadata that lives on the stack until a tail call needs it stored.
 */
#define __NC_NETDEV_PROGRAM(handler)						\
SEC(NC_SEC) int nc_netdev(struct nc_ctx *ctx)					\
{										\
	__u32 gen = nc_current_gen();						\
	__u64 peer = nc_netdev_word(gen);					\
										\
	if ((nc_peer_flags(peer) & NC_PEER_F_FUSED) &&				\
	    nc_peer_target(peer) == nc_cube_id * NC_MAX_MICROCUBES) {		\
		struct __nc_frame f = {						\
			.md = {							\
				.in_port = nc_peer_port(peer),			\
				.cube_id = nc_cube_id,				\
				.flags = gen,					\
			},							\
			.stats = nc_lookup_stats(),				\
		};								\
										\
		nc_count_rx(ctx, &f.md);					\
		return handler(ctx, &f.md);					\
	}									\
	return nc_netdev_deliver(ctx, gen, peer);				\
}

/* A cube with ports: handler(ctx, md) runs for every packet entering any port. */
#define NC_CUBE(handler)							\
	const volatile __u32 nc_cube_kind = NC_KIND_STANDARD;			\
	__NC_PROGRAM(nc_entry, handler, 1)					\
	__NC_NETDEV_PROGRAM(handler)						\
	char _license[] SEC("license") = "GPL"

/* A transparent cube, stacked on a port or netdev: md->in_port is the
 * direction (NC_DIR_INGRESS or NC_DIR_EGRESS); nc_forward() lets a packet go on.
 */
#define NC_TRANSPARENT_CUBE(handler)						\
	const volatile __u32 nc_cube_kind = NC_KIND_TRANSPARENT;		\
	__NC_PROGRAM(nc_entry, handler, 1)					\
	__NC_NETDEV_PROGRAM(handler)						\
	char _license[] SEC("license") = "GPL"

/* Declares that the cube decrements the IP TTL (IPv6 hop limit) of every packet
 * it forwards and never forwards one whose TTL ran out, as a router does. Chains
 * may then link such cubes in a cycle (three routers in a triangle): a packet that
 * circles crosses one on every turn. The kernel's tail-call limit still bounds
 * its path at run time; what it stops is dropped and counted (tail_call).
 */
#define NC_DECREMENTS_TTL() const volatile __u32 nc_decrements_ttl = 1

/* Micro-cube @index (1..NC_MAX_MICROCUBES-1), reached with nc_call(ctx, md, index). */
#define NC_MICROCUBE(index, handler)						\
	_Static_assert((index) > 0 && (index) < NC_MAX_MICROCUBES,		\
		       "micro-cube index out of range");			\
	__NC_PROGRAM(nc_micro_##index, handler, 0)

#endif /* __NETCUBE_CUBE_H */
