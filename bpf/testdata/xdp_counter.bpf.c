/* XDP packet counter: counts IPv4 ICMP packets by type and passes everything. */
#include "icmp.h"

SEC("xdp")
int xdp_count_icmp(struct xdp_md *ctx)
{
	count_icmp((void *)(long)ctx->data, (void *)(long)ctx->data_end);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
