// vm-keeper: what keeps a warm QEMU VM (`shimlab factory`) alive, and no
// longer than its holder. QEMU has no lifeline of its own, and the kernel's
// PR_SET_PDEATHSIG ties a process to its parent for good: a VM the factory
// spawned directly would die with the factory after the factory handed it
// to a pod. So the factory spawns this, and this spawns QEMU (PDEATHSIG set
// on it, as the shim's cold path asks of setpriv) and stays its parent.
//
// The holder speaks the mock agent's lifeline protocol on fd 3: until an
// adoption, the holder is whoever holds the other end (the factory), and EOF
// there kills the VM; "ADOPT <pid> <start time>\n" makes that process the
// holder ("ADOPTED\n", or "REFUSED ...\n" for a process not alive with that
// start time), watched through a pidfd from then on. The holder's end kills
// the VM at once; QEMU's own end ends this with QEMU's status.
//
// With --claim, an adopted VM must also be claimed: its taker creates <file>
// once it has taken the VM over, and a VM still unclaimed <ms> after its
// adoption is killed. The factory may die between the adoption and its
// answer; the taker then boots a VM of its own, and the adopted one would
// have lived, unused, as long as the taker (the mock agent's lifeline has
// the same rule).
//
//   vm-keeper [--claim <file> <ms>] <qemu> [args...]      (fd 3: the lifeline)
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static pid_t child = -1;

static void finish(int status) {
  if (child > 0) {
    kill(child, SIGKILL);
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
  }
  _exit(status);
}

// /proc/<pid>/stat's 22nd field, as util/proc's processStartTime reads it.
static int start_time(pid_t pid, char *out, size_t n) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = 0;
  char *p = strrchr(buf, ')');  // the command name may hold spaces and parentheses
  if (!p) return -1;
  p += 2;                        // field 3 starts here
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  size_t k = strcspn(p, " ");
  if (k == 0 || k >= n) return -1;
  memcpy(out, p, k);
  out[k] = 0;
  return 0;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void say(int fd, const char *s) {
  ssize_t r;
  do r = write(fd, s, strlen(s));
  while (r < 0 && errno == EINTR);
}

int main(int argc, char **argv) {
  const char *claim_file = NULL;
  long long claim_ms = 0, claim_by = -1;  // claim_by: the deadline, once adopted and until claimed
  if (argc >= 4 && strcmp(argv[1], "--claim") == 0) {
    claim_file = argv[2];
    claim_ms = atoll(argv[3]);
    argv += 3;
    argc -= 3;
  }
  if (argc < 2 || (claim_file && claim_ms <= 0)) {
    fprintf(stderr, "usage: vm-keeper [--claim <file> <ms>] <qemu> [args...] (fd 3: the lifeline)\n");
    return 2;
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC);
  if (sfd < 0) {
    perror("vm-keeper: signalfd");
    return 1;
  }
  // A factory gone between its ADOPT and our answer must not take the VM with it through SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  pid_t me = getpid();
  child = fork();
  if (child < 0) {
    perror("vm-keeper: fork");
    return 1;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != me) _exit(1);  // the keeper died before the prctl
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    signal(SIGPIPE, SIG_DFL);
    close(3);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "vm-keeper: exec %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  int lifeline = 3, holder = -1;
  char text[256];
  size_t used = 0;
  for (;;) {
    struct pollfd p[3] = {{sfd, POLLIN, 0}, {lifeline, POLLIN, 0}, {holder, POLLIN, 0}};
    int wait_ms = -1;
    if (claim_by >= 0) {
      long long left = claim_by - now_ms();
      wait_ms = left > 0 ? (int)left : 0;
    }
    if (poll(p, 3, wait_ms) < 0) {
      if (errno == EINTR) continue;
      finish(1);
    }
    if (claim_by >= 0 && now_ms() >= claim_by) {
      if (access(claim_file, F_OK) != 0) {
        fprintf(stderr, "vm-keeper: adopted but not claimed in %lld ms (no %s): the VM goes\n", claim_ms, claim_file);
        finish(0);
      }
      claim_by = -1;
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) < 0 && errno != EAGAIN) finish(1);
      int st;
      pid_t r = waitpid(child, &st, WNOHANG);
      if (r == child) {
        child = -1;
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
      }
    }
    if (holder >= 0 && p[2].revents) finish(0);  // the holder ended: so does its VM
    if (lifeline >= 0 && p[1].revents) {
      ssize_t r = read(lifeline, text + used, sizeof text - 1 - used);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (holder < 0) finish(0);  // the factory went before it handed the VM out
        close(lifeline);
        lifeline = -1;
        continue;
      }
      used += (size_t)r;
      text[used] = 0;
      char *nl = strchr(text, '\n');
      if (!nl) {
        if (used >= sizeof text - 1) used = 0;  // a line too long for an adoption: not one
        continue;
      }
      *nl = 0;
      int pid;
      char want[64], have[64];
      if (holder < 0 && sscanf(text, "ADOPT %d %63s", &pid, want) == 2 && pid > 0) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0 && start_time(pid, have, sizeof have) == 0 && strcmp(have, want) == 0) {
          holder = fd;
          if (claim_file) claim_by = now_ms() + claim_ms;
          say(lifeline, "ADOPTED\n");
          // From here the factory's end means nothing: it may close it, or die.
          close(lifeline);
          lifeline = -1;
        } else {
          if (fd >= 0) close(fd);
          say(lifeline, "REFUSED no such process\n");
        }
      }
      // what remains after the line is the start of the next
      size_t rest = used - (size_t)(nl + 1 - text);
      memmove(text, nl + 1, rest);
      used = rest;
    }
  }
}
