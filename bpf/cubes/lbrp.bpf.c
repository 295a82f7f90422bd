// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* lbrp: a load balancer in front of clients (frontend ports) and the way to the
 * backends (the backend port), as Kubernetes ClusterIP services work. A packet
 * from a client to a service (virtual IP, port, protocol) goes to one of the
 * service's backends, its destination rewritten and its source kept (the backend
 * sees the client); the answers come back rewritten to come from the service.
 * Anything else passes: frontend to backend port, and backend port to the
 * frontend port of the destination host (lb_hosts; else lb_config's default),
 * ARP to that of the host it asks or answers for (its target address).
 * IPv4 and IPv6.
 *
 * What runs where. Per packet the fast path does a service lookup (a hash: the
 * cost does not depend on how many services there are) and a session lookup.
 * For a flow's first packet it picks a backend from the service's Maglev table
 * (lb_maglev: LB_MAGLEV_SIZE slots, each a backend, by the hash of the flow) or,
 * with session affinity, the one the client had, and records the flow's two
 * sessions. Building Maglev tables (which slots each backend gets, by weight, so
 * that a change of backends moves few slots) is the slow path's work:
 * remote-services/lbrp/tables.ts. A flow keeps its backend for as long as its
 * connection-tracking entry lives, whatever the tables say meanwhile: removing a
 * backend moves none of the flows of the others. A service without backends
 * refuses: a TCP reset, or ICMP port unreachable, back to the client.
 */
#include <netcube/netcube.h>
#include <netcube/conntrack.h>
#include <netcube/rewrite.h>
#include <netcube/reject.h>

enum lb_limits {
	LB_MAX_SERVICES = 16384,
	LB_MAX_BACKENDS = 65536,
	LB_MAGLEV_SIZE  = 1021, /* slots per service; a prime */
	LB_NO_PORT      = 0xffffffff,
};

enum lb_port_role {
	LB_FRONTEND = 0,
	LB_BACKEND  = 1,
};

struct lb_port {
	enum lb_port_role role;
};

struct lb_config {
	__u32 backend_port;  /* the port towards the backends */
	__u32 default_port;  /* the frontend port of hosts lb_hosts does not name; LB_NO_PORT: none */
};

struct lb_service_key {
	nc_ipv6_t vip;
	nc_port_t port;
	__u8 proto;
	__u8 pad;
};

struct lb_service {
	__u32 id;           /* its lb_maglev entry */
	__u32 backends;     /* 0: refuse */
	__u32 affinity_s;   /* session affinity by client address for this long; 0: none */
	__u32 pad;
};

struct lb_backend {
	nc_ipv6_t addr;
	nc_port_t port;
	__u16 pad;
};

struct lb_maglev {
	__u16 slot[LB_MAGLEV_SIZE]; /* backend ids */
};

/* A flow as a packet shows it. */
struct lb_flow {
	nc_ipv6_t saddr;
	nc_ipv6_t daddr;
	nc_port_t sport;
	nc_port_t dport;
	__u8 proto;
	__u8 pad[3];
};

/* Client -> service: the backend it goes to. */
struct lb_session {
	__u32 backend;
	__u32 pad;
};

/* Backend -> client: the service it answers as, and the client's frontend port. */
struct lb_reverse {
	nc_ipv6_t vip;
	nc_port_t vport;
	__u16 pad;
	__u32 frontend_port;
};

struct lb_affinity_key {
	nc_ipv6_t client;
	__u32 service;
};

struct lb_affinity {
	__u32 backend;
	__u32 pad;
	__u64 expires_ns;
};

/* Port -> its role; [0] of lb_config says the backend and default ports. */
NC_TABLE(lb_ports, BPF_MAP_TYPE_ARRAY, __u32, struct lb_port, NC_MAX_PORTS, NC_SCOPE_CUBE);
NC_TABLE(lb_config, BPF_MAP_TYPE_ARRAY, __u32, struct lb_config, 1, NC_SCOPE_CUBE);
/* Host behind a frontend port -> that port. */
NC_TABLE(lb_hosts, BPF_MAP_TYPE_HASH, nc_ipv6_t, __u32, 4096, NC_SCOPE_CUBE);
/* Virtual IP, port, protocol -> the service. */
NC_TABLE(lb_services, BPF_MAP_TYPE_HASH, struct lb_service_key, struct lb_service, LB_MAX_SERVICES, NC_SCOPE_CUBE);
/* Backend id -> address and port. */
NC_TABLE(lb_backends, BPF_MAP_TYPE_ARRAY, __u32, struct lb_backend, LB_MAX_BACKENDS, NC_SCOPE_CUBE);
/* Service id -> its Maglev table. */
NC_TABLE(lb_maglev, BPF_MAP_TYPE_ARRAY, __u32, struct lb_maglev, LB_MAX_SERVICES, NC_SCOPE_CUBE);
/* The session table: flows to services, and their answers. */
NC_TABLE(lb_sessions, BPF_MAP_TYPE_LRU_HASH, struct lb_flow, struct lb_session, 65536, NC_SCOPE_CUBE);
NC_TABLE(lb_reverse, BPF_MAP_TYPE_LRU_HASH, struct lb_flow, struct lb_reverse, 65536, NC_SCOPE_CUBE);
/* Client address and service -> its backend, for services with affinity. */
NC_TABLE(lb_affinity, BPF_MAP_TYPE_LRU_HASH, struct lb_affinity_key, struct lb_affinity, 65536, NC_SCOPE_CUBE);
/* Flows client <-> service: how long their sessions live. */
NC_CONNTRACK(lb_ct, 65536);

static __always_inline void lb_flow_of(const struct nc_flow *f, struct lb_flow *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = f->saddr;
	k->daddr = f->daddr;
	k->sport = f->sport;
	k->dport = f->dport;
	k->proto = f->proto;
}

/* A hash of the client's end of the flow, for its Maglev slot. */
static __always_inline __u32 lb_hash(const struct nc_flow *f, __u32 service)
{
	__u32 h = service * 0x9e3779b9 ^ ((__u32)f->sport << 16 | f->proto);

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h ^= f->saddr.word[i];
		h *= 0x85ebca6b;
		h ^= h >> 13;
	}
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The backend of a new flow to @svc (id @*id), or NULL. */
static __always_inline struct lb_backend *lb_pick(const struct nc_flow *f, const struct lb_service *svc, __u32 *id)
{
	struct lb_affinity_key ak = {};
	struct lb_affinity *a;
	struct lb_maglev *m;
	__u32 sid = svc->id, slot;

	if (svc->affinity_s) {
		ak.client = f->saddr;
		ak.service = sid;
		a = bpf_map_lookup_elem(&lb_affinity, &ak);
		if (a && a->expires_ns > bpf_ktime_get_coarse_ns()) {
			struct lb_backend *b = bpf_map_lookup_elem(&lb_backends, &a->backend);

			if (b && b->port) {
				*id = a->backend;
				return b;
			}
		}
	}
	m = bpf_map_lookup_elem(&lb_maglev, &sid);
	if (!m)
		return NULL;
	slot = lb_hash(f, sid) % LB_MAGLEV_SIZE;
	/* The verifier does not follow a remainder: show it the bound. */
	asm volatile("" : "+r"(slot));
	if (slot >= LB_MAGLEV_SIZE)
		return NULL;
	*id = m->slot[slot];
	return bpf_map_lookup_elem(&lb_backends, id);
}

/* The port that reaches frontend host @host (NULL: none known): its own, else
 * the default frontend; LB_NO_PORT (a drop) without either. */
static __always_inline __u32 lb_frontend_port(const nc_ipv6_t *host)
{
	__u32 zero = 0, *port = NULL;
	struct lb_config *cfg;

	if (host)
		port = bpf_map_lookup_elem(&lb_hosts, host);
	if (port)
		return *port;
	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	return cfg ? cfg->default_port : LB_NO_PORT;
}

static __always_inline __u32 lb_backend_port(void)
{
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);

	return cfg ? cfg->backend_port : LB_NO_PORT;
}

/* Tracks the flow client <-> service (@f as the client sends it, or after the
 * answer's rewrite). A global function: the verifier checks it once.
 */
__noinline int lb_track(struct nc_ctx *ctx, const struct nc_flow *f, struct nc_ct *ct)
{
	if (!f || !ct)
		return NC_CT_INVALID;
	return nc_ct_lookup(ctx, lb_ct, f, ct);
}

/* Rewrites the destination (@dst 1, to a backend) or the source (@dst 0, back to the service). */
__noinline int lb_rewrite(struct nc_ctx *ctx, struct nc_flow *f, int dst, const nc_ipv6_t *addr, nc_port_t port)
{
	if (!f || !addr)
		return -1;
	if (nc_rewrite_addr(ctx, f, dst, addr) || nc_rewrite_port(ctx, f, dst, port))
		return -1;
	return 0;
}

/* A new flow to @svc: its backend, its sessions. 0, or -1 without a backend. */
__noinline int lb_open(struct nc_flow *f, const struct lb_service *svc, __u32 in_port, struct lb_backend *to)
{
	struct lb_reverse rev = {};
	struct lb_session s = {};
	struct lb_backend *b;
	struct lb_flow k;
	__u32 id = 0;

	if (!f || !svc || !to)
		return -1;
	b = lb_pick(f, svc, &id);
	if (!b || !b->port)
		return -1;
	*to = *b;
	s.backend = id;
	lb_flow_of(f, &k);
	if (bpf_map_update_elem(&lb_sessions, &k, &s, BPF_ANY))
		return -1;
	/* The answers: backend -> client. */
	rev.vip = f->daddr;
	rev.vport = f->dport;
	rev.frontend_port = in_port;
	k.saddr = b->addr;
	k.sport = b->port;
	k.daddr = f->saddr;
	k.dport = f->sport;
	if (bpf_map_update_elem(&lb_reverse, &k, &rev, BPF_ANY))
		return -1;
	if (svc->affinity_s) {
		struct lb_affinity_key ak = { .client = f->saddr, .service = svc->id };
		struct lb_affinity a = { .backend = id };

		a.expires_ns = bpf_ktime_get_coarse_ns() + (__u64)svc->affinity_s * NC_NS_PER_S;
		bpf_map_update_elem(&lb_affinity, &ak, &a, BPF_ANY);
	}
	return 0;
}

/* Turns the packet into its refusal (nc_reject). */
__noinline int lb_reject(struct nc_ctx *ctx, const struct nc_flow *f)
{
	return f ? nc_reject(ctx, f) : -1;
}

/* From a client: to a service, or on towards the backends. The port it leaves by. */
static __always_inline __u32 lb_from_frontend(struct nc_ctx *ctx, struct nc_md *md, struct nc_flow *f)
{
	struct lb_service_key sk = {};
	struct lb_service *svc;
	struct lb_session *s;
	struct lb_backend to, *b;
	struct lb_flow k;
	struct nc_ct ct;

	sk.vip = f->daddr;
	sk.port = f->dport;
	sk.proto = f->proto;
	svc = bpf_map_lookup_elem(&lb_services, &sk);
	if (!svc)
		return lb_backend_port();
	lb_track(ctx, f, &ct);
	lb_flow_of(f, &k);
	s = bpf_map_lookup_elem(&lb_sessions, &k);
	b = s && ct.tracked ? bpf_map_lookup_elem(&lb_backends, &s->backend) : NULL;
	if (b && b->port) {
		to = *b;
	} else {
		if (!svc->backends)
			return lb_reject(ctx, f) ? LB_NO_PORT : md->in_port;
		/* Only what opens a flow opens one; the rest of a flow whose backend went is dropped. */
		if (ct.state != NC_CT_NEW && !(ct.state == NC_CT_ESTABLISHED && !s))
			return LB_NO_PORT;
		if (lb_open(f, svc, md->in_port, &to))
			return LB_NO_PORT;
		if (nc_ct_commit(lb_ct, f, &ct))
			return LB_NO_PORT;
	}
	if (lb_rewrite(ctx, f, 1, &to.addr, to.port))
		return LB_NO_PORT;
	return lb_backend_port();
}

/* From the backends: an answer to a service's client, or anything else. The port it leaves by. */
static __always_inline __u32 lb_from_backend(struct nc_ctx *ctx, struct nc_flow *f)
{
	struct lb_reverse *rev;
	struct nc_flow client;
	struct lb_flow k;
	struct nc_ct ct;

	lb_flow_of(f, &k);
	rev = bpf_map_lookup_elem(&lb_reverse, &k);
	if (!rev)
		return lb_frontend_port(&f->daddr);
	client = *f;
	client.saddr = rev->vip;
	client.sport = rev->vport;
	lb_track(ctx, &client, &ct);
	if (!ct.tracked) {
		/* The service's flow is over: these ports now carry something else. */
		bpf_map_delete_elem(&lb_reverse, &k);
		return lb_frontend_port(&f->daddr);
	}
	if (lb_rewrite(ctx, f, 0, &rev->vip, rev->vport))
		return LB_NO_PORT;
	return rev->frontend_port;
}

/* ARP from the backends (a router asking for a frontend host, or answering it)
 * goes to the frontend of the address it is about, its target, as an IPv4
 * packet goes to the frontend of its destination: so hosts behind one frontend
 * port each (pods) and a router behind the backend port find each other.
 */
static __always_inline __u32 lb_arp_frontend_port(struct nc_ctx *ctx)
{
	struct nc_arp_ipv4 *a;
	struct nc_cursor c;
	struct ethhdr *eth;
	nc_ipv6_t target;
	__u16 vlan;

	nc_cursor_init(&c, ctx);
	if (nc_parse_eth(&c, &eth, &vlan) != NC_ETH_P_ARP)
		return lb_frontend_port(NULL);
	a = nc_parse_arp_ipv4(&c);
	if (!a)
		return lb_frontend_port(NULL);
	nc_ipv4_mapped(&target, a->target_ip);
	return lb_frontend_port(&target);
}

/* The port a packet leaves by; LB_NO_PORT (out of range for nc_redirect) drops it. */
static __always_inline __u32 lb_route(struct nc_ctx *ctx, struct nc_md *md)
{
	__u32 in = md->in_port;
	struct lb_port *p = bpf_map_lookup_elem(&lb_ports, &in);
	struct nc_flow f;
	int parsed = nc_flow_parse(ctx, &f);

	if (!p)
		return LB_NO_PORT;
	if (p->role == LB_BACKEND) {
		if (parsed == NC_FLOW_IP)
			return f.fragment ? lb_frontend_port(&f.daddr) : lb_from_backend(ctx, &f);
		return parsed == NC_FLOW_NOT_IP ? lb_arp_frontend_port(ctx) : lb_frontend_port(NULL);
	}
	if (parsed != NC_FLOW_IP || f.fragment)
		return lb_backend_port();
	return lb_from_frontend(ctx, md, &f);
}

/* One way out. Each nc_redirect is a tree of constant tail calls, one per port
 * and generation (deliver.h), and the kernel takes at most 1,024 of those per
 * program: with one per path, a netdev's entry could not run this cube fused. */
static __always_inline int lbrp(struct nc_ctx *ctx, struct nc_md *md)
{
	return nc_redirect(ctx, md, lb_route(ctx, md));
}

NC_CUBE(lbrp);
