// Baseline for the binding benchmark: the same map-update loops as
// suites/binding.ts, calling libbpf directly. Prints the best rate of each
// loop over the rounds as one JSON object.
//
// usage: map_update ENTRIES ROUNDS
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	__u32 entries, rounds, i, r, count;
	double best_update = 0, best_batch = 0, start, rate;
	__u32 *keys;
	__u64 *values;
	int fd, err;

	if (argc != 3) {
		fprintf(stderr, "usage: %s ENTRIES ROUNDS\n", argv[0]);
		return 2;
	}
	entries = strtoul(argv[1], NULL, 10);
	rounds = strtoul(argv[2], NULL, 10);
	keys = calloc(entries, sizeof(*keys));
	values = calloc(entries, sizeof(*values));
	if (!keys || !values)
		return 1;
	for (i = 0; i < entries; i++) {
		keys[i] = i;
		values[i] = i;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", sizeof(__u32), sizeof(__u64), entries, NULL);
	if (fd < 0) {
		fprintf(stderr, "map create: %s\n", strerror(-fd));
		return 1;
	}

	for (r = 0; r < rounds; r++) {
		start = now();
		for (i = 0; i < entries; i++) {
			__u32 key = i;
			__u64 value = i;

			err = bpf_map_update_elem(fd, &key, &value, BPF_ANY);
			if (err) {
				fprintf(stderr, "update: %s\n", strerror(-err));
				return 1;
			}
		}
		rate = entries / (now() - start);
		if (rate > best_update)
			best_update = rate;

		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		count = entries;
		start = now();
		err = bpf_map_update_batch(fd, keys, values, &count, &opts);
		rate = entries / (now() - start);
		if (err || count != entries) {
			fprintf(stderr, "update batch: %s (%u of %u)\n", strerror(-err), count, entries);
			return 1;
		}
		if (rate > best_batch)
			best_batch = rate;
	}
	printf("{\"update\": %.0f, \"batch\": %.0f}\n", best_update, best_batch);
	close(fd);
	return 0;
}
