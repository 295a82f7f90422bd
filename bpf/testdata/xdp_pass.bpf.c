/* Passes every frame. Attached to a veth only to give it NAPI, so that frames
 * another veth XDP-transmits into it arrive (TC-mode tests, whose netcube entry
 * is not an XDP program). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
