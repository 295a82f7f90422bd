/* Globals in each data section (.rodata, .data, .bss). The return value
 * shows what the program saw, so a test run checks values set before load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum tst_mode {
	TST_MODE_OFF = 0,
	TST_MODE_ADD_PORT = 1,
};

struct tst_config {
	__u16 port;
	char label[8];
	enum tst_mode mode;
	__u8 mac[6];
};

const volatile __u32 answer = 7;
const volatile struct tst_config settings = { .port = 80, .label = "none" };
__u32 bias = 1;
__u64 calls;

SEC("xdp")
int return_answer(struct xdp_md *ctx)
{
	calls++;
	if (settings.mode == TST_MODE_ADD_PORT)
		return answer + bias + settings.port;
	return answer + bias;
}

char LICENSE[] SEC("license") = "GPL";
