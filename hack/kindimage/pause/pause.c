/*
 * pause: the sandbox process of a Kubernetes pod (registry.k8s.io/pause).
 * It holds the pod's namespaces, sleeps until SIGINT or SIGTERM and reaps
 * the zombies it inherits as PID 1. Written for tmbox's kind node image
 * (hack/kindimage), after upstream's build/pause/linux/pause.c; built with
 * gcc -static.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.10.1"

static void sigdown(int signo) {
	psignal(signo, "Shutting down, got signal");
	exit(0);
}

static void sigreap(int signo) {
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; ++i) {
		if (!strcasecmp(argv[i], "-v")) {
			printf("pause.c %s\n", VERSION);
			return 0;
		}
	}
	if (getpid() != 1)
		fprintf(stderr, "Warning: pause should be the first process\n");

	struct sigaction down = {.sa_handler = sigdown};
	struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
	if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
	    sigaction(SIGCHLD, &reap, NULL) < 0) {
		perror("sigaction");
		return 1;
	}
	for (;;)
		pause();
	fprintf(stderr, "Error: infinite loop terminated\n");
	return 42;
}
