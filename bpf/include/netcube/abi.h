/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* netcube data-plane ABI: limits, encodings and records shared with userspace.
 *
 * Everything here is read by the cube runtime (node-daemon/src/runtime/abi.ts) and
 * must stay in step with it; test/dataplane/abi.test.ts checks both against the BTF
 * of the compiled objects. Cube authors never need this file directly.
 */
#ifndef __NETCUBE_ABI_H
#define __NETCUBE_ABI_H

enum nc_limits {
	NC_MAX_PORTS      = 32,   /* ports per cube; a port index is masked to this */
	NC_MAX_MICROCUBES = 8,    /* programs per cube, reached by nc_call(index) */
	NC_MAX_CUBES      = 4096, /* cube ids 1..4095 on one host */
	NC_PROG_SLOTS     = NC_MAX_CUBES * NC_MAX_MICROCUBES, /* the host's nc_progs: cube id * 8 */
	NC_LOG_FMT_LEN    = 64,   /* bytes of a data-plane log format string */
	NC_LOG_ARGS       = 4,    /* arguments of one data-plane log record */
	NC_PKT_MAX        = 1536, /* bytes of a packet copied to the slow path */
};

/* A port's peer is one 64-bit word, so that rewiring is a single atomic store:
 *   bits 63..56 kind, bits 55..48 in-port of a cube peer, bits 47..40 flags
 *   (NC_PEER_F_*), bits 31..0 ifindex, or for a cube its slot in the host's
 *   nc_progs (cube id * NC_MAX_MICROCUBES).
 *
 * Where the word names a cube, a prog array slot of the sender holds that cube's
 * entry program (nc_peer_progs of a cube, nc_netdev_progs of a netdev entry),
 * written with the word: the word says how to enter the cube, the slot is the
 * jump into it.
 *
 * Every peer word exists twice, once per generation (NC_GENERATIONS). A packet
 * takes the host's current generation where it enters netcube (nc_gen) and reads
 * only words of that generation on its whole way, so it sees the old topology or
 * the new one, never a mix: the daemon writes a complete new generation, flips
 * nc_gen with one store, and waits for an RCU grace period before it touches the
 * old generation again.
 */
enum nc_generation {
	NC_GENERATIONS = 2,
};
enum nc_peer_kind {
	NC_PEER_NONE   = 0, /* unconnected: packets sent here are dropped */
	NC_PEER_NETDEV = 1, /* redirect out of a netdev (ifindex) */
	NC_PEER_CUBE   = 2, /* tail-call the cube's entry program, entering at in-port */
	NC_PEER_STACK  = 3, /* hand the packet to the kernel's own stack */
};

/* Flags of a peer word (bits 47..40). */
enum nc_peer_flag {
	/* Of a netdev peer, under TC: the netdev is one end of a pair (veth) whose other end lives in
	 * another network namespace (a pod's eth0). bpf_redirect_peer puts the skb
	 * straight into that end's receive path, skipping the pair's transmit and a
	 * trip through the backlog queue. It drops the packet when the other end is
	 * in the same namespace, or when called anywhere but at TC ingress, so the
	 * daemon sets the flag only in words that TC ingress programs read (every TC
	 * program of netcube runs there) and only where `ip -d link` shows the other
	 * end elsewhere. XDP ignores it.
	 */
	NC_PEER_F_REDIRECT_PEER = 0x1,
	/* Of a cube peer, in a netdev entry's word only: the program attached to the
	 * netdev is that cube's entry fused with the netdev entry (nc_netdev), which
	 * then runs the cube itself instead of tail-calling it. The daemon sets it
	 * only while that program is attached (see node-daemon/src/runtime/netdev.ts).
	 */
	NC_PEER_F_FUSED = 0x2,
};

/* The two internal ports of a transparent cube: one per direction it sees. */
enum nc_direction {
	NC_DIR_INGRESS = 0, /* towards the port or netdev it is stacked on */
	NC_DIR_EGRESS  = 1, /* away from it */
};

enum nc_cube_kind {
	NC_KIND_STANDARD    = 1,
	NC_KIND_TRANSPARENT = 2,
};

enum nc_table_scope {
	NC_SCOPE_PRIVATE = 1, /* one micro-cube: replaced with it */
	NC_SCOPE_CUBE    = 2, /* every micro-cube of one cube (the default) */
	NC_SCOPE_HOST    = 3, /* every cube on the host that declares it */
};

enum nc_log_level {
	NC_LOG_OFF   = 0,
	NC_LOG_ERROR = 1,
	NC_LOG_WARN  = 2,
	NC_LOG_INFO  = 3,
	NC_LOG_DEBUG = 4,
	NC_LOG_TRACE = 5,
};

/* Host-wide error counters (nc_errors), by cause. */
enum nc_error {
	NC_ERR_TAIL_CALL   = 0, /* a peer or micro-cube slot was empty, or the chain too long */
	NC_ERR_NO_METADATA = 1, /* a cube was entered without netcube metadata */
	NC_ERR_LOG_FULL    = 2, /* the log ring buffer was full: a record was lost */
	NC_ERR_PKT_FULL    = 3, /* the slow-path ring buffer was full: a packet was dropped */
	NC_ERR_PKT_RATE    = 4, /* a cube exceeded its slow-path rate: a packet was dropped */
	NC_ERR_PKT_HELD    = 5, /* the cube's controller had no room (pkt_held): a packet was dropped */
	NC_ERR_MAX         = 8,
};

enum nc_hook {
	NC_HOOK_ID_XDP = 1,
	NC_HOOK_ID_TC  = 2,
};

/* Per-packet metadata. It travels with the packet between cubes: in the XDP
 * metadata area before the frame, or in skb->cb[0..4] under TC (exactly 20 bytes).
 */
struct nc_md {
	__u16 in_port;  /* port the packet entered the current cube on */
	__u16 cube_id;  /* the cube handling the packet */
	__u16 reason;   /* why the packet goes to the controller (nc_to_controller) */
	__u16 flags;    /* NC_MD_F_*, set by the framework */
	__u32 user[3];  /* the cube's own words, kept across nc_call() */
};

/* md.flags: the generation of peer words this packet follows (see nc_gen). */
#define NC_MD_F_GEN        0x1
/* md.flags: the packet was sent by the cube's control plane (packet-out). */
#define NC_MD_F_PACKET_OUT 0x2
/* md.flags, with the packet only: the user words follow (they are not all 0).
 * The framework sets and clears it; a cube never sees it. */
#define NC_MD_F_USER       0x4

/* Per-port counters of a cube (per-CPU; userspace sums the CPUs). */
struct nc_port_stats {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 drops;
	__u64 to_controller;
};

/* A cube's counters, by port: the one per-CPU value of its nc_stats. */
struct nc_cube_stats {
	struct nc_port_stats port[NC_MAX_PORTS];
};

/* Per-cube settings changed at run time by the daemon (nc_cfg[0]). */
struct nc_cube_cfg {
	__u32 log_level;      /* enum nc_log_level */
	__u32 pkt_rate;       /* slow-path packets per second; 0 = unlimited */
	__u32 pkt_burst;      /* slow-path bucket size, packets */
	__u32 pkt_held;       /* 1 while the cube's controller has no room: its slow-path
	                       * packets are dropped here, not copied for nobody */
};

/* Slow-path token bucket of a cube (nc_pkt_bucket[0]), written by the data plane
 * only. CPUs race on it without locks: a burst may overshoot by a packet per CPU,
 * which is fine for a limit that protects the daemon.
 */
struct nc_pkt_bucket {
	__u64 tokens_milli;   /* tokens x 1000, so slow rates still refill */
	__u64 last_ns;
};

/* One data-plane log record (nc_log_rb); formatted in userspace. */
struct nc_log_rec {
	__u64 ts_ns;
	__u16 cube_id;
	__u8  level;
	__u8  nargs;
	__u32 pad;
	__u64 args[NC_LOG_ARGS];
	char  fmt[NC_LOG_FMT_LEN];
};

/* One slow-path packet (nc_pkt_rb): header, then the packet's first bytes. */
struct nc_pkt_rec {
	__u32 cap_len;  /* bytes of data[] that hold the packet */
	__u32 wire_len; /* length of the packet as it was */
	__u16 cube_id;
	__u16 in_port;
	__u16 reason;
	__u16 hook;     /* enum nc_hook */
	__u32 user[3];
	__u32 pad;
	__u64 ts_ns;    /* bpf_ktime_get_ns() when it was handed over */
	__u8  data[NC_PKT_MAX];
};

/* Packet-out: a trailer appended to a frame the daemon sends into its inject
 * veth; the inject program of the right hook reads it, trims it off and delivers
 * the frame to the peer it names.
 */
struct nc_inject_trailer {
	__u64 peer;     /* an encoded peer (see nc_peer_kind) */
	__u32 user[3];
	__u32 gen;      /* the generation @peer was read from */
	__u32 magic;    /* NC_INJECT_MAGIC */
	__u32 hook;     /* enum nc_hook of the cube it goes to */
};
#define NC_INJECT_MAGIC 0x6e63696aU /* "ncij" */

#endif /* __NETCUBE_ABI_H */
