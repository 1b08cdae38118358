/*
 * The process that holds a shim-sandboxer pod's namespaces: containerd 2.x
 * creates no pause container for such a pod, so the shim's sandbox runs this
 * in the agent instead, the way Kata's agent keeps a pause process for the
 * sandbox's shared pid namespace. It is the pod's pid 1 when the pod shares
 * one: orphans of the pod's containers are reaped here, not left as zombies.
 * SIGTERM or SIGINT end it with status 0, as the pause image's program does.
 * Built static (scripts/build-native.mjs): it runs in whatever rootfs the
 * sandbox gives it, the host's or a VM guest's.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void bye(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = bye};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigemptyset(&term.sa_mask);
  sigemptyset(&child.sa_mask);
  if (sigaction(SIGINT, &term, NULL) || sigaction(SIGTERM, &term, NULL) || sigaction(SIGCHLD, &child, NULL)) return 1;
  for (;;) pause();
}
