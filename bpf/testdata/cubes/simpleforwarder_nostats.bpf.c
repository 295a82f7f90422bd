// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* simpleforwarder without per-port counters: for the benchmark that measures what
 * the counters cost p1's forwarder itself (test/bench/suites/dataplane.ts). Never
 * for real use.
 */
#define NC_PORT_STATS 0
#include "../../cubes/simpleforwarder.bpf.c"
