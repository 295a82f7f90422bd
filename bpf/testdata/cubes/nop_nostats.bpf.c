// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* nop without per-port counters: for the benchmark that measures what the
 * counters cost a cube (test/bench/suites/dataplane.ts). Never for real use.
 */
#define NC_PORT_STATS 0
#include "../../cubes/nop.bpf.c"
