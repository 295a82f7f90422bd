// New TCP connections per second, for lb.conn_ratio (test/bench/suites/catalog.ts) and
// k8s.svc.conn_ratio_5000 (suites/k8s.ts): both ends in C with epoll, so that what
// limits the rate is the path between them, not the tool.
//
// usage: conn_rate serve PORT
//          accepts connections on PORT and closes them at once, until killed;
//          prints "ready" once listening
//        conn_rate connect ADDRESS PORT SECONDS PARALLEL
//          keeps PARALLEL connects in flight to ADDRESS:PORT for SECONDS; each is
//          closed with a reset the moment it is established (no TIME_WAIT, so no
//          port runs out); prints {"connections":N,"failed":F,"seconds":S}
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int serve(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct epoll_event ev = { .events = EPOLLIN }, events[64];
	int one = 1, lfd, ep;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4096)) {
		perror("conn_rate serve");
		return 1;
	}
	ep = epoll_create1(0);
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, events, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd;

			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				close(fd);
		}
	}
}

/* Starts one non-blocking connect; returns its fd, or -1. */
static int start(int ep, const struct sockaddr_in *sa)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	struct epoll_event ev = { .events = EPOLLOUT };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return fd;
}

static int connect_loop(const char *address, int port, double seconds, int parallel)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct epoll_event events[256];
	long connections = 0, failed = 0;
	double begin, end;
	int ep, open = 0;

	if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
		fprintf(stderr, "conn_rate: not an IPv4 address: %s\n", address);
		return 2;
	}
	ep = epoll_create1(0);
	begin = now();
	end = begin + seconds;
	for (int i = 0; i < parallel; i++)
		if (start(ep, &sa) >= 0)
			open++;
	while (open > 0) {
		int n = epoll_wait(ep, events, 256, 100);
		int more = now() < end;

		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd, err = 0;
			socklen_t len = sizeof(err);

			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				failed++;
			else
				connections++;
			close(fd); /* with SO_LINGER 0: a reset */
			open--;
			if (more && start(ep, &sa) >= 0)
				open++;
		}
		if (!more && n == 0)
			break; /* the last connects went unanswered */
	}
	printf("{\"connections\":%ld,\"failed\":%ld,\"seconds\":%.3f}\n", connections, failed, now() - begin);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "connect"))
		return connect_loop(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: conn_rate serve PORT | conn_rate connect ADDRESS PORT SECONDS PARALLEL\n");
	return 2;
}
