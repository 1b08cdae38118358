// shimlab's native addon: the few system calls Node does not expose.
//
//  - prctl(PR_SET_CHILD_SUBREAPER) and waitpid(pid): the agent reaps container
//    inits that runc re-parents to it, as containerd's runc shim does;
//  - a console socket: runc hands the pty master over SCM_RIGHTS;
//  - ioctl(TIOCSWINSZ) and openpty for terminals;
//  - AF_VSOCK connect, bridged to an AF_UNIX socketpair because libuv cannot
//    wrap a vsock fd as a stream;
//  - a listening TCP socket made inside another network namespace, and the
//    original destination of a connection that netfilter redirected to it
//    (a VM pod's loopback relay);
//  - posix_spawn of a detached process: libuv fork()s, which copies the page
//    tables of a ~40 MB Node process; glibc's posix_spawn uses CLONE_VFORK and
//    shares them until exec (the shim's `start` launching its daemon);
//  - memory a long-lived daemon or agent need not hold alone: a bundle's source
//    as an external string over a read-only mapping of its file (page cache,
//    shared by every process that maps it, where a copy in each V8 heap would be
//    private), and malloc_trim for what start-up freed but glibc kept;
//  - mount(2) and umount2(2) for a container's rootfs, where a mount(8) process each
//    cost the shim ~6 ms a container (src/pod/mount.ts);
//  - a parked daemon's hand-over (src/shim/park.ts): the fds and the words of
//    the launcher that takes it (native/oneshot.c), dup2, and the launcher's
//    resource limits, which a daemon it had spawned would have inherited.
//
// Plain Node-API (C), no dependencies; built by scripts/build-native.mjs.
#define _GNU_SOURCE
#define NAPI_EXPERIMENTAL // node_api_create_external_string_latin1 (Node >= 20.4)
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <malloc.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

struct sockaddr_vm_compat {
  sa_family_t svm_family;
  unsigned short svm_reserved1;
  unsigned int svm_port;
  unsigned int svm_cid;
  unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                         sizeof(unsigned int) - sizeof(unsigned int)];
};

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "napi call failed"); \
      return NULL;                                    \
    }                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value e, m, code;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  const char* name = NULL;
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case ECHILD: name = "ECHILD"; break;
    case ETIMEDOUT: name = "ETIMEDOUT"; break;
    case ECONNREFUSED: name = "ECONNREFUSED"; break;
    case ECONNRESET: name = "ECONNRESET"; break;
    case EADDRNOTAVAIL: name = "EADDRNOTAVAIL"; break;
    case EAFNOSUPPORT: name = "EAFNOSUPPORT"; break;
    case ENODEV: name = "ENODEV"; break;
    case EINVAL: name = "EINVAL"; break;
    case EPERM: name = "EPERM"; break;
    case ENOTTY: name = "ENOTTY"; break;
    case EBADF: name = "EBADF"; break;
    case EADDRINUSE: name = "EADDRINUSE"; break;
    default: name = "EUNKNOWN";
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, e, "code", code);
  napi_value errnoVal;
  napi_create_int32(env, err, &errnoVal);
  napi_set_named_property(env, e, "errno", errnoVal);
  napi_throw(env, e);
  return NULL;
}

static int get_i32(napi_env env, napi_value v, int32_t* out) { return napi_get_value_int32(env, v, out) == napi_ok; }
static int get_u32(napi_env env, napi_value v, uint32_t* out) { return napi_get_value_uint32(env, v, out) == napi_ok; }

// ---- subreaper and waitpid ---------------------------------------------------

static napi_value SetChildSubreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_CHILD_SUBREAPER)", errno);
  napi_value t;
  napi_get_boolean(env, 1, &t);
  return t;
}

// waitpid(pid, WNOHANG) → null while running, or { pid, status } where status
// is the exit code, or 128 + signal for a signalled process.
static napi_value WaitPid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t pid;
  if (argc < 1 || !get_i32(env, argv[0], &pid)) {
    napi_throw_type_error(env, NULL, "waitpid(pid)");
    return NULL;
  }
  int st = 0;
  pid_t r;
  do {
    r = waitpid(pid, &st, WNOHANG | __WALL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, "waitpid", errno);
  napi_value out;
  if (r == 0) {
    napi_get_null(env, &out);
    return out;
  }
  int code = 0;
  if (WIFEXITED(st)) code = WEXITSTATUS(st);
  else if (WIFSIGNALED(st)) code = 128 + WTERMSIG(st);
  else {
    napi_get_null(env, &out);  // stopped or continued: not an exit
    return out;
  }
  napi_value p, s;
  napi_create_object(env, &out);
  napi_create_int32(env, r, &p);
  napi_create_int32(env, code, &s);
  napi_set_named_property(env, out, "pid", p);
  napi_set_named_property(env, out, "status", s);
  return out;
}

// ---- terminals -----------------------------------------------------------------

static napi_value SetWinsize(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t rows, cols;
  if (argc < 3 || !get_i32(env, argv[0], &fd) || !get_u32(env, argv[1], &rows) || !get_u32(env, argv[2], &cols)) {
    napi_throw_type_error(env, NULL, "setWinsize(fd, rows, cols)");
    return NULL;
  }
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  ws.ws_row = (unsigned short)rows;
  ws.ws_col = (unsigned short)cols;
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) return throw_errno(env, "ioctl(TIOCSWINSZ)", errno);
  return NULL;
}

static napi_value GetWinsize(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "getWinsize(fd)");
    return NULL;
  }
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return throw_errno(env, "ioctl(TIOCGWINSZ)", errno);
  napi_value out, r, c;
  napi_create_object(env, &out);
  napi_create_uint32(env, ws.ws_row, &r);
  napi_create_uint32(env, ws.ws_col, &c);
  napi_set_named_property(env, out, "rows", r);
  napi_set_named_property(env, out, "cols", c);
  return out;
}

// openpty() → { master, slave, name }; the master is non-blocking, both close-on-exec.
static napi_value OpenPty(napi_env env, napi_callback_info info) {
  (void)info;
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return throw_errno(env, "posix_openpt", errno);
  if (grantpt(m) != 0 || unlockpt(m) != 0) {
    int e = errno;
    close(m);
    return throw_errno(env, "grantpt/unlockpt", e);
  }
  char name[128];
  if (ptsname_r(m, name, sizeof name) != 0) {
    int e = errno;
    close(m);
    return throw_errno(env, "ptsname_r", e);
  }
  int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    int e = errno;
    close(m);
    return throw_errno(env, "open pty slave", e);
  }
  fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
  napi_value out, mv, sv, nv;
  napi_create_object(env, &out);
  napi_create_int32(env, m, &mv);
  napi_create_int32(env, s, &sv);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &nv);
  napi_set_named_property(env, out, "master", mv);
  napi_set_named_property(env, out, "slave", sv);
  napi_set_named_property(env, out, "name", nv);
  return out;
}

// fd's file status flag on or off (fcntl F_SETFL): name(fd[, on]), on by default unless required.
static napi_value set_status_flag(napi_env env, napi_callback_info info, const char* usage, int flag, bool on_required) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool on = true;
  if (argc < 1 || !get_i32(env, argv[0], &fd) || (argc > 1 && napi_get_value_bool(env, argv[1], &on) != napi_ok) || (on_required && argc < 2)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  // O_ASYNC signals the fd's owner: this process
  if (flag == O_ASYNC && on && fcntl(fd, F_SETOWN, getpid()) != 0) return throw_errno(env, "fcntl(F_SETOWN)", errno);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return throw_errno(env, "fcntl(F_GETFL)", errno);
  if (fcntl(fd, F_SETFL, on ? fl | flag : fl & ~flag) != 0) return throw_errno(env, "fcntl(F_SETFL)", errno);
  return NULL;
}

static napi_value SetNonBlocking(napi_env env, napi_callback_info info) {
  return set_status_flag(env, info, "setNonBlocking(fd, on)", O_NONBLOCK, false);
}

// setAsync(fd, on): O_ASYNC on fd, owned by this process, or off again. A virtio-serial port
// then sends SIGIO when its host connects (or data comes): the guest's agent waits for a host
// on that signal instead of reading the port every few ms, which kept an idle TCG guest's vCPU
// ~10 % busy (src/mock-agent/serial.ts).
static napi_value SetAsync(napi_env env, napi_callback_info info) {
  return set_status_flag(env, info, "setAsync(fd, on)", O_ASYNC, true);
}

// ---- async work: console socket and vsock ------------------------------------------

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int kind;  // 0 = console accept, 1 = vsock connect
  // inputs
  char path[sizeof(((struct sockaddr_un*)0)->sun_path)];
  int listen_fd;
  unsigned int cid, port;
  int timeout_ms;
  // outputs
  int result_fd;
  int err;
  const char* what;
} job_t;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int wait_fd(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline < 0 ? -1 : deadline - now_ms();
    if (deadline >= 0 && left <= 0) return ETIMEDOUT;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) continue;
    return 0;
  }
}

// Accepts one connection on the console socket and receives the fd runc sends.
static void console_execute(job_t* j) {
  long deadline = j->timeout_ms > 0 ? now_ms() + j->timeout_ms : -1;
  int e = wait_fd(j->listen_fd, POLLIN, deadline);
  if (e) {
    j->err = e;
    j->what = "accept console socket";
    return;
  }
  int c = accept4(j->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) {
    j->err = errno;
    j->what = "accept console socket";
    return;
  }
  e = wait_fd(c, POLLIN, deadline);
  if (e) {
    close(c);
    j->err = e;
    j->what = "receive console fd";
    return;
  }
  char name[4096];
  struct iovec iov = {name, sizeof name};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  ssize_t n;
  do {
    n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  int saved = errno;
  close(c);
  if (n < 0) {
    j->err = saved;
    j->what = "recvmsg console fd";
    return;
  }
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
    j->err = EBADF;
    j->what = "console socket carried no fd";
    return;
  }
  memcpy(&j->result_fd, CMSG_DATA(cm), sizeof(int));
  int fl = fcntl(j->result_fd, F_GETFL);
  fcntl(j->result_fd, F_SETFL, fl | O_NONBLOCK);
}

typedef struct {
  int a, b;
} bridge_t;

// Copies bytes both ways between a vsock fd and a unix socketpair end until either closes.
static void* bridge_main(void* arg) {
  bridge_t* br = (bridge_t*)arg;
  int fds[2] = {br->a, br->b};
  int open_dir[2] = {1, 1};  // 0: a→b, 1: b→a
  char buf[65536];
  while (open_dir[0] || open_dir[1]) {
    struct pollfd p[2] = {{fds[0], open_dir[0] ? POLLIN : 0, 0}, {fds[1], open_dir[1] ? POLLIN : 0, 0}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (!open_dir[i]) continue;
      if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = read(fds[i], buf, sizeof buf);
        if (n <= 0) {
          if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
          open_dir[i] = 0;
          shutdown(fds[1 - i], SHUT_WR);
          if (n < 0) open_dir[1 - i] = 0;
          continue;
        }
        ssize_t off = 0;
        while (off < n) {
          ssize_t w = write(fds[1 - i], buf + off, (size_t)(n - off));
          if (w < 0) {
            if (errno == EINTR) continue;
            open_dir[0] = open_dir[1] = 0;
            break;
          }
          off += w;
        }
      }
    }
  }
  close(br->a);
  close(br->b);
  free(br);
  return NULL;
}

static void vsock_execute(job_t* j) {
  long deadline = j->timeout_ms > 0 ? now_ms() + j->timeout_ms : -1;
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    j->err = errno;
    j->what = "socket(AF_VSOCK)";
    return;
  }
  struct sockaddr_vm_compat addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = j->cid;
  addr.svm_port = j->port;
  int r = connect(s, (struct sockaddr*)&addr, sizeof addr);
  if (r < 0 && errno != EINPROGRESS) {
    j->err = errno;
    j->what = "connect(AF_VSOCK)";
    close(s);
    return;
  }
  if (r < 0) {
    int e = wait_fd(s, POLLOUT, deadline);
    if (e) {
      j->err = e;
      j->what = "connect(AF_VSOCK)";
      close(s);
      return;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr) {
      j->err = soerr;
      j->what = "connect(AF_VSOCK)";
      close(s);
      return;
    }
  }
  int fl = fcntl(s, F_GETFL);
  fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
    j->err = errno;
    j->what = "socketpair";
    close(s);
    return;
  }
  bridge_t* br = (bridge_t*)malloc(sizeof *br);
  br->a = s;
  br->b = sp[1];
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &at, bridge_main, br) != 0) {
    j->err = errno ? errno : EAGAIN;
    j->what = "pthread_create";
    close(s);
    close(sp[0]);
    close(sp[1]);
    free(br);
    pthread_attr_destroy(&at);
    return;
  }
  pthread_attr_destroy(&at);
  j->result_fd = sp[0];
}

static void job_execute(napi_env env, void* data) {
  (void)env;
  job_t* j = (job_t*)data;
  j->result_fd = -1;
  j->err = 0;
  if (j->kind == 0) console_execute(j);
  else vsock_execute(j);
}

static void job_complete(napi_env env, napi_status status, void* data) {
  job_t* j = (job_t*)data;
  if (status != napi_ok && !j->err) {
    j->err = ECANCELED;
    j->what = "async work";
  }
  if (j->err) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", j->what, strerror(j->err));
    napi_value e, m, code, errnoVal;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, NULL, m, &e);
    const char* name = j->err == ETIMEDOUT ? "ETIMEDOUT"
                       : j->err == ECONNREFUSED ? "ECONNREFUSED"
                       : j->err == ECONNRESET ? "ECONNRESET"
                       : j->err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                       : j->err == EAFNOSUPPORT ? "EAFNOSUPPORT"
                       : j->err == ENODEV ? "ENODEV"
                       : j->err == EHOSTUNREACH ? "EHOSTUNREACH"
                       : j->err == ENETUNREACH ? "ENETUNREACH"
                       : "EUNKNOWN";
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
    napi_set_named_property(env, e, "code", code);
    napi_create_int32(env, j->err, &errnoVal);
    napi_set_named_property(env, e, "errno", errnoVal);
    napi_reject_deferred(env, j->deferred, e);
  } else {
    napi_value v;
    napi_create_int32(env, j->result_fd, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value start_job(napi_env env, job_t* j, const char* name) {
  napi_value promise, resname;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "napi_create_promise failed");
    return NULL;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resname);
  napi_create_async_work(env, NULL, resname, job_execute, job_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

// A unix socket address from a JS string; false when it is none (not a string, or too long for sun_path).
static bool get_unix_addr(napi_env env, napi_value v, struct sockaddr_un* sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t len = 0;
  return napi_get_value_string_utf8(env, v, sa->sun_path, sizeof sa->sun_path, &len) == napi_ok && len < sizeof sa->sun_path - 1;
}

// consoleListen(path) → a blocking listening unix socket fd for runc's --console-socket.
static napi_value ConsoleListen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  if (argc < 1 || !get_unix_addr(env, argv[0], &sa)) {
    napi_throw_type_error(env, NULL, "consoleListen(path): path missing or longer than 107 bytes");
    return NULL;
  }
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, "socket", errno);
  unlink(sa.sun_path);
  if (bind(s, (struct sockaddr*)&sa, sizeof sa) != 0 || listen(s, 1) != 0) {
    int e = errno;
    close(s);
    return throw_errno(env, "bind console socket", e);
  }
  napi_value v;
  napi_create_int32(env, s, &v);
  return v;
}

// listenUnix(path, backlog) → a listening unix stream socket fd. libuv would
// unlink the path when its handle closes (at our exit, say), which would take
// the socket away from the daemon we hand the fd to; a raw fd has no such owner.
static napi_value ListenUnix(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  int32_t backlog = 512;
  if (argc < 1 || !get_unix_addr(env, argv[0], &sa)) {
    napi_throw_type_error(env, NULL, "listenUnix(path, backlog): path missing or longer than 107 bytes");
    return NULL;
  }
  if (argc > 1) get_i32(env, argv[1], &backlog);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, "socket", errno);
  if (bind(s, (struct sockaddr*)&sa, sizeof sa) != 0) {
    int e = errno;
    close(s);
    if (e == EADDRINUSE) {
      napi_value err, m, code;
      napi_create_string_utf8(env, "bind: address already in use", NAPI_AUTO_LENGTH, &m);
      napi_create_error(env, NULL, m, &err);
      napi_create_string_utf8(env, "EADDRINUSE", NAPI_AUTO_LENGTH, &code);
      napi_set_named_property(env, err, "code", code);
      napi_throw(env, err);
      return NULL;
    }
    return throw_errno(env, "bind", e);
  }
  if (listen(s, backlog) != 0) {
    int e = errno;
    close(s);
    return throw_errno(env, "listen", e);
  }
  napi_value v;
  napi_create_int32(env, s, &v);
  return v;
}

// consoleReceive(listenFd, timeoutMs) → Promise<ptyMasterFd>
static napi_value ConsoleReceive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, timeout = 0;
  if (argc < 1 || !get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "consoleReceive(listenFd, timeoutMs)");
    return NULL;
  }
  if (argc > 1) get_i32(env, argv[1], &timeout);
  job_t* j = (job_t*)calloc(1, sizeof *j);
  j->kind = 0;
  j->listen_fd = fd;
  j->timeout_ms = timeout;
  return start_job(env, j, "shimlab.consoleReceive");
}

// vsockConnect(cid, port, timeoutMs) → Promise<unix fd bridged to the vsock stream>
static napi_value VsockConnect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t cid, port;
  int32_t timeout = 0;
  if (argc < 2 || !get_u32(env, argv[0], &cid) || !get_u32(env, argv[1], &port)) {
    napi_throw_type_error(env, NULL, "vsockConnect(cid, port, timeoutMs)");
    return NULL;
  }
  if (argc > 2) get_i32(env, argv[2], &timeout);
  job_t* j = (job_t*)calloc(1, sizeof *j);
  j->kind = 1;
  j->cid = cid;
  j->port = port;
  j->timeout_ms = timeout;
  return start_job(env, j, "shimlab.vsockConnect");
}

// pipe() → { read, write }, both close-on-exec; the read end non-blocking for libuv.
static napi_value Pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return throw_errno(env, "pipe2", errno);
  napi_value out, r, w;
  napi_create_object(env, &out);
  napi_create_int32(env, fds[0], &r);
  napi_create_int32(env, fds[1], &w);
  napi_set_named_property(env, out, "read", r);
  napi_set_named_property(env, out, "write", w);
  return out;
}

static napi_value CloseFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "closeFd(fd)");
    return NULL;
  }
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

// ---- mount(2) and umount2(2) --------------------------------------------------------

static char* dup_string(napi_env env, napi_value v);

// mount(source, target, fstype, flags, data): the rootfs mounts a shim makes for each container
// (src/pod/mount.ts), without a mount(8) process each: containerd's runc shim calls mount(2) too.
static napi_value Mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t flags = 0;
  if (argc < 5 || !get_u32(env, argv[3], &flags)) {
    napi_throw_type_error(env, NULL, "mount(source, target, fstype, flags, data)");
    return NULL;
  }
  char* source = dup_string(env, argv[0]);
  char* target = dup_string(env, argv[1]);
  char* fstype = dup_string(env, argv[2]);
  char* data = dup_string(env, argv[4]);
  napi_value result = NULL;
  if (!source || !target || !fstype || !data) {
    napi_throw_type_error(env, NULL, "mount(source, target, fstype, flags, data): bad argument");
  } else if (mount(source, target, fstype[0] ? fstype : NULL, flags, data[0] ? data : NULL) != 0) {
    throw_errno(env, "mount", errno);
  }
  free(source);
  free(target);
  free(fstype);
  free(data);
  return result;
}

// umount2(target, flags)
static napi_value Umount2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t flags = 0;
  char* target = argc >= 2 && get_u32(env, argv[1], &flags) ? dup_string(env, argv[0]) : NULL;
  if (!target) {
    napi_throw_type_error(env, NULL, "umount2(target, flags)");
    return NULL;
  }
  if (umount2(target, (int)flags) != 0) throw_errno(env, "umount2", errno);
  free(target);
  return NULL;
}

// ---- memory ----------------------------------------------------------------------

static void unmap_source(node_api_basic_env env, void* data, void* hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

// mapLatin1(path): the file as a string whose characters stay in the file's pages (unless V8 chose
// to copy it), or null when it cannot be (empty, not ASCII, not mappable). ASCII only: the files are
// UTF-8, which reads the same as Latin-1 only below 0x80.
static napi_value MapLatin1(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char file[4096];
  size_t n;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], file, sizeof file, &n) != napi_ok || n >= sizeof file - 1) {
    napi_throw_type_error(env, NULL, "mapLatin1(path)");
    return NULL;
  }
  CHECK(napi_get_null(env, &out));
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) return close(fd), out;
  size_t len = (size_t)st.st_size;
  char* p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return out;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)p[i] >= 0x80) return munmap(p, len), out;
  bool copied = false;
  napi_value str;
  if (node_api_create_external_string_latin1(env, p, len, unmap_source, (void*)(uintptr_t)len, &str, &copied) != napi_ok) return munmap(p, len), out;
  // copied: V8 made a string of its own and has already run the finaliser; the text is the same
  return str;
}

// mallocTrim(): gives the kernel back what glibc's heaps hold free; true if any was.
static napi_value MallocTrim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_get_boolean(env, malloc_trim(0) == 1, &out));
  return out;
}

// ---- sockets in a network namespace -------------------------------------------

// A job done inside a network namespace, on a thread of its own that ends
// right after: setns(CLONE_NEWNET) changes only the calling thread, and a
// socket (or a tun file) keeps the namespace it was made in. Done on Node's
// main thread instead, a failed setns back would leave every later socket of
// the process in the pod's namespace; a thread that dies takes its namespace
// with it. A job embeds this first: work() gets it back as its own struct.
typedef struct netns_job {
  char netns[4096];
  // In the namespace: the fd made, or -1 with errno set and *what naming the step that failed.
  int (*work)(struct netns_job* j, const char** what);
  int fd;
  int err;
  const char* what;
} netns_job_t;

static void* netns_job_main(void* arg) {
  netns_job_t* j = (netns_job_t*)arg;
  int ns = open(j->netns, O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    j->err = errno;
    j->what = "open network namespace";
    return NULL;
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    j->err = errno;
    j->what = "setns(CLONE_NEWNET)";
    close(ns);
    return NULL;
  }
  close(ns);
  j->fd = j->work(j, &j->what);
  if (j->fd < 0) j->err = errno;
  return NULL;
}

// Runs j in its namespace: the fd it made, as a number, or a thrown error naming the step that failed.
static napi_value run_netns_job(napi_env env, netns_job_t* j) {
  j->fd = -1;
  pthread_t t;
  int e = pthread_create(&t, NULL, netns_job_main, j);
  if (e != 0) return throw_errno(env, "pthread_create", e);
  pthread_join(t, NULL);
  if (j->fd < 0) return throw_errno(env, j->what, j->err);
  napi_value v;
  napi_create_int32(env, j->fd, &v);
  return v;
}

// Closes fd keeping the errno of the call that failed before it.
static int fail_closing(int fd, const char** what, const char* step) {
  int e = errno;
  close(fd);
  errno = e;
  *what = step;
  return -1;
}

typedef struct {
  netns_job_t job;
  struct sockaddr_in addr;
  int backlog;
} netns_listen_t;

static int netns_listen(netns_job_t* job, const char** what) {
  netns_listen_t* j = (netns_listen_t*)job;
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    *what = "socket";
    return -1;
  }
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr*)&j->addr, sizeof j->addr) != 0) return fail_closing(s, what, "bind");
  if (listen(s, j->backlog) != 0) return fail_closing(s, what, "listen");
  return s;
}

// listenTcpInNetns(netnsPath, ipv4, port, backlog) → a listening TCP socket fd
// that belongs to that namespace (port 0: the kernel picks one).
static napi_value ListenTcpInNetns(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  netns_listen_t j;
  memset(&j, 0, sizeof j);
  char host[64];
  size_t len = 0;
  uint32_t port = 0;
  int32_t backlog = 511;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], j.job.netns, sizeof j.job.netns, &len) != napi_ok || len == 0 ||
      len >= sizeof j.job.netns - 1 || napi_get_value_string_utf8(env, argv[1], host, sizeof host, &len) != napi_ok ||
      !get_u32(env, argv[2], &port) || port > 65535) {
    napi_throw_type_error(env, NULL, "listenTcpInNetns(netnsPath, ipv4, port, backlog)");
    return NULL;
  }
  if (argc > 3) get_i32(env, argv[3], &backlog);
  j.addr.sin_family = AF_INET;
  j.addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &j.addr.sin_addr) != 1) {
    napi_throw_type_error(env, NULL, "listenTcpInNetns: not an IPv4 address");
    return NULL;
  }
  j.backlog = backlog;
  j.job.work = netns_listen;
  return run_netns_job(env, &j.job);
}

// openTapInNetns(netnsPath, name) → fd: the tap `name` of a pod's network
// namespace, opened there (a tun file belongs to the namespace of whoever
// opened it) with QEMU's own flags, for a running VM to take over QMP
// (getfd): a warm VM booted outside the pod's namespace gets its NIC so.
typedef struct {
  netns_job_t job;
  char name[IFNAMSIZ];
} netns_tap_t;

static int netns_tap(netns_job_t* job, const char** what) {
  netns_tap_t* j = (netns_tap_t*)job;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *what = "open /dev/net/tun";
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  memcpy(ifr.ifr_name, j->name, strlen(j->name));
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) return fail_closing(fd, what, "TUNSETIFF");
  return fd;
}

static napi_value OpenTapInNetns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  netns_tap_t j;
  memset(&j, 0, sizeof j);
  size_t len = 0, nlen = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], j.job.netns, sizeof j.job.netns, &len) != napi_ok || len == 0 ||
      len >= sizeof j.job.netns - 1 || napi_get_value_string_utf8(env, argv[1], j.name, sizeof j.name, &nlen) != napi_ok ||
      nlen == 0 || nlen >= IFNAMSIZ - 1) {
    napi_throw_type_error(env, NULL, "openTapInNetns(netnsPath, tapName)");
    return NULL;
  }
  j.job.work = netns_tap;
  return run_netns_job(env, &j.job);
}

#define MAX_PASSED_FDS 2

// One sendmsg of iov with fds (at most MAX_PASSED_FDS) as SCM_RIGHTS: the bytes sent, or -1 and errno.
static ssize_t send_with_fds(int sock, struct iovec* iov, int iovcnt, const int* fds, int nfds) {
  char ctrl[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
  memset(ctrl, 0, sizeof ctrl);
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = iov;
  m.msg_iovlen = (size_t)iovcnt;
  m.msg_control = ctrl;
  m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
  struct cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  ssize_t n;
  do n = sendmsg(sock, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}

// sendWithFd(socketFd, buffer, fd): one sendmsg of buffer with fd as
// SCM_RIGHTS, as QMP's getfd wants its descriptor: with the command's bytes.
// The socket is non-blocking (libuv's); a message this small goes at once
// or not at all (EAGAIN is thrown).
static napi_value SendWithFd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock, fd;
  void* data = NULL;
  size_t len = 0;
  if (argc < 3 || !get_i32(env, argv[0], &sock) || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || !get_i32(env, argv[2], &fd) || len == 0) {
    napi_throw_type_error(env, NULL, "sendWithFd(socketFd, buffer, fd)");
    return NULL;
  }
  struct iovec iov = {data, len};
  ssize_t n = send_with_fds(sock, &iov, 1, &fd, 1);
  if (n < 0) return throw_errno(env, "sendmsg", errno);
  if ((size_t)n != len) return throw_errno(env, "sendmsg (short)", EAGAIN);
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

// originalDst(fd) → { address, port }: where a connection was going before
// netfilter's REDIRECT (SO_ORIGINAL_DST, from its conntrack entry).
static napi_value OriginalDst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "originalDst(fd)");
    return NULL;
  }
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &sl) != 0) return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
  napi_value out, a, p;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &a);
  napi_create_uint32(env, ntohs(sa.sin_port), &p);
  napi_set_named_property(env, out, "address", a);
  napi_set_named_property(env, out, "port", p);
  return out;
}

// ---- spawnDetached -----------------------------------------------------------

static char* dup_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char* s = malloc(len + 1);
  if (!s) return NULL;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static void free_strings(char** v) {
  if (!v) return;
  for (char** p = v; *p; p++) free(*p);
  free(v);
}

// A NULL-terminated copy of a JS array of strings; NULL on a bad argument.
static char** string_array(napi_env env, napi_value arr) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char** v = calloc(n + 1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, arr, i, &e) != napi_ok || !(v[i] = dup_string(env, e))) {
      free_strings(v);
      return NULL;
    }
  }
  return v;
}

// spawnDetached(file, argv, env, cwd, fds) → pid. The child starts a new
// session (as libuv's detached), with default signal dispositions and an
// empty mask (Node ignores SIGPIPE, and posix_spawn keeps ignored signals
// ignored otherwise). fds[i] becomes the child's fd i; -1 means /dev/null.
// Every other fd of ours is close-on-exec, so the child gets only these.
static napi_value SpawnDetached(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t nfds = 0;
  if (argc < 5 || napi_get_array_length(env, argv[4], &nfds) != napi_ok || nfds > 64) {
    napi_throw_type_error(env, NULL, "spawnDetached(file, argv, env, cwd, fds)");
    return NULL;
  }
  char* file = dup_string(env, argv[0]);
  char* cwd = dup_string(env, argv[3]);
  char** args = string_array(env, argv[1]);
  char** envp = string_array(env, argv[2]);
  int32_t fds[64];
  int ok = file && cwd && args && envp && args[0];
  for (uint32_t i = 0; ok && i < nfds; i++) {
    napi_value e;
    ok = napi_get_element(env, argv[4], i, &e) == napi_ok && get_i32(env, e, &fds[i]);
  }
  napi_value result = NULL;
  if (!ok) {
    napi_throw_type_error(env, NULL, "spawnDetached(file, argv, env, cwd, fds): bad argument");
    goto out;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  // Sources first moved above every target, so that one target never
  // overwrites a source still to be placed.
  const int high = 100;
  for (uint32_t i = 0; i < nfds; i++) {
    if (fds[i] < 0) posix_spawn_file_actions_addopen(&fa, high + i, "/dev/null", O_RDWR, 0);
    else posix_spawn_file_actions_adddup2(&fa, fds[i], high + i);
  }
  for (uint32_t i = 0; i < nfds; i++) {
    posix_spawn_file_actions_adddup2(&fa, high + i, i);
    posix_spawn_file_actions_addclose(&fa, high + i);
  }
  posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int err = posix_spawn(&pid, file, &fa, &attr, args, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    throw_errno(env, "posix_spawn", err);
    goto out;
  }
  napi_create_int32(env, pid, &result);
out:
  free(file);
  free(cwd);
  free_strings(args);
  free_strings(envp);
  return result;
}

// ---- a parked daemon's hand-over (src/shim/park.ts, native/oneshot.c) ------------------

#define HANDOFF_MAX (1u << 20)
#define HANDOFF_MAX_FDS MAX_PASSED_FDS

static long deadline_in(int ms) { return ms > 0 ? now_ms() + ms : -1; }

// Reads exactly n bytes from a blocking-or-not stream fd by the deadline; fds that ride along
// (SCM_RIGHTS) are collected into fds[*nfds]. 0 on success, else an errno.
static int read_full(int fd, char* b, size_t n, long deadline, int* fds, int* nfds) {
  size_t got = 0;
  while (got < n) {
    int e = wait_fd(fd, POLLIN, deadline);
    if (e) return e;
    struct iovec iov = {b + got, n - got};
    char ctrl[CMSG_SPACE(sizeof(int) * HANDOFF_MAX_FDS)];
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) return errno;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k; i++) {
        int f;
        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        if (fds && *nfds < HANDOFF_MAX_FDS) fds[(*nfds)++] = f;
        else close(f);
      }
    }
    if (m.msg_flags & MSG_CTRUNC) return EPROTO;
    if (r == 0) return ECONNRESET;
    got += (size_t)r;
  }
  return 0;
}

// awaitHandoff(listenFd, lifelineFd, claimMs) → { conn, pid, data, fds } | { gone: reason }.
// Blocks the calling thread: a parked daemon has nothing else to do. The lifeline is the
// factory's end of a socketpair: "HANDOUT\n" means a launcher was given our socket and has
// claimMs to come; its EOF before that means the factory is gone, and so is our reason to be.
static napi_value AwaitHandoff(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t lfd, life, claim_ms;
  if (argc < 3 || !get_i32(env, argv[0], &lfd) || !get_i32(env, argv[1], &life) || !get_i32(env, argv[2], &claim_ms)) {
    napi_throw_type_error(env, NULL, "awaitHandoff(listenFd, lifelineFd, claimMs)");
    return NULL;
  }
  const char* gone = NULL;
  long claim_by = -1;
  char word[64];
  size_t wl = 0;
  int conn = -1;
  for (;;) {
    struct pollfd p[2] = {{lfd, POLLIN, 0}, {life, POLLIN, 0}};
    int nfd = life >= 0 ? 2 : 1;
    long left = claim_by < 0 ? -1 : claim_by - now_ms();
    if (claim_by >= 0 && left <= 0) {
      gone = "handed out, never claimed";
      break;
    }
    int r = poll(p, (nfds_t)nfd, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return throw_errno(env, "poll", errno);
    if (nfd == 2 && p[1].revents) {
      char b[64];
      ssize_t n = read(life, b, sizeof b);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        life = -1;  // EOF: the factory hung up
        if (claim_by < 0) {
          gone = "the factory hung up";
          break;
        }
        continue;
      }
      for (ssize_t i = 0; i < n; i++) {
        if (b[i] == '\n') {
          word[wl] = 0;
          if (strcmp(word, "HANDOUT") == 0 && claim_by < 0) claim_by = deadline_in(claim_ms);
          wl = 0;
        } else if (wl < sizeof word - 1) word[wl++] = b[i];
      }
    }
    if (p[0].revents & POLLIN) {
      conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (conn < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)) continue;
      if (conn < 0) return throw_errno(env, "accept", errno);
      break;
    }
  }
  napi_value out, v;
  napi_create_object(env, &out);
  if (gone) {
    napi_create_string_utf8(env, gone, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, out, "gone", v);
    return out;
  }
  // the launcher's words: a 4-byte little-endian length, then that many bytes; its fds with them
  int fds[HANDOFF_MAX_FDS], nfds = 0;
  unsigned char hdr[4];
  long by = deadline_in(2000);
  int e = read_full(conn, (char*)hdr, 4, by, fds, &nfds);
  uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
  char* data = NULL;
  if (!e && len > HANDOFF_MAX) e = EMSGSIZE;
  if (!e && !(data = malloc(len ? len : 1))) e = ENOMEM;
  if (!e) e = read_full(conn, data, len, by, fds, &nfds);
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (!e && getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) e = errno;
  if (e) {
    free(data);
    for (int i = 0; i < nfds; i++) close(fds[i]);
    close(conn);
    char msg[96];
    snprintf(msg, sizeof msg, "a launcher's hand-over: %s", strerror(e));
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, out, "gone", v);
    return out;
  }
  napi_create_int32(env, conn, &v);
  napi_set_named_property(env, out, "conn", v);
  napi_create_int32(env, cred.pid, &v);
  napi_set_named_property(env, out, "pid", v);
  napi_create_buffer_copy(env, len, data, NULL, &v);
  free(data);
  napi_set_named_property(env, out, "data", v);
  napi_value arr;
  napi_create_array_with_length(env, (size_t)nfds, &arr);
  for (int i = 0; i < nfds; i++) {
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  napi_set_named_property(env, out, "fds", arr);
  return out;
}

// confirmHandoff(conn, word, timeoutMs) → true once the launcher answered "GO\n" to word; false on
// anything else, its hang-up or the timeout (it went on without us). conn is closed either way.
static napi_value ConfirmHandoff(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t conn, ms;
  char word[256];
  size_t wlen = 0;
  if (argc < 3 || !get_i32(env, argv[0], &conn) || napi_get_value_string_utf8(env, argv[1], word, sizeof word, &wlen) != napi_ok || !get_i32(env, argv[2], &ms)) {
    napi_throw_type_error(env, NULL, "confirmHandoff(conn, word, timeoutMs)");
    return NULL;
  }
  bool ok = false;
  ssize_t n;
  do n = send(conn, word, wlen, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)wlen) {
    char b[3];
    ok = read_full(conn, b, 3, deadline_in(ms), NULL, NULL) == 0 && memcmp(b, "GO\n", 3) == 0;
  }
  close(conn);
  napi_value v;
  napi_get_boolean(env, ok, &v);
  return v;
}

// dup2(from, to): Node has no call for it; a hand-over puts the launcher's fds where a daemon it
// had spawned would have found them (2: the log, 3: the listening socket).
static napi_value Dup2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t from, to;
  if (argc < 2 || !get_i32(env, argv[0], &from) || !get_i32(env, argv[1], &to)) {
    napi_throw_type_error(env, NULL, "dup2(from, to)");
    return NULL;
  }
  int r;
  do r = dup2(from, to);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, "dup2", errno);
  return NULL;
}

// adoptLimitsOf(pid): this process's resource limits become pid's (prlimit), every one of them.
static napi_value AdoptLimitsOf(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t pid;
  if (argc < 1 || !get_i32(env, argv[0], &pid)) {
    napi_throw_type_error(env, NULL, "adoptLimitsOf(pid)");
    return NULL;
  }
  for (int r = 0; r < RLIM_NLIMITS; r++) {
    struct rlimit l;
    if (prlimit((pid_t)pid, (enum __rlimit_resource)r, NULL, &l) != 0) return throw_errno(env, "prlimit (read)", errno);
    if (prlimit(0, (enum __rlimit_resource)r, &l, NULL) != 0) return throw_errno(env, "prlimit (set)", errno);
  }
  return NULL;
}


// handOff(parkSocket, data, fds, timeoutMs) → the daemon's pid, or a string saying why not: the
// launcher's side of a parked daemon's hand-over (src/shim/start.ts; native/oneshot.c has its own).
// Connects, sends data with fds (SCM_RIGHTS), waits for "READY <pid>\n" and answers "GO\n".
static napi_value HandOff(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  void* data = NULL;
  size_t len = 0;
  uint32_t nfds = 0;
  int32_t ms = 0;
  bool isArr = false;
  if (argc < 4 || !get_unix_addr(env, argv[0], &sa) ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || len == 0 || napi_is_array(env, argv[2], &isArr) != napi_ok || !isArr ||
      napi_get_array_length(env, argv[2], &nfds) != napi_ok || nfds < 1 || nfds > HANDOFF_MAX_FDS || !get_i32(env, argv[3], &ms)) {
    napi_throw_type_error(env, NULL, "handOff(parkSocket, data, fds[1..2], timeoutMs)");
    return NULL;
  }
  int fds[HANDOFF_MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    if (!get_i32(env, v, &fds[i])) {
      napi_throw_type_error(env, NULL, "handOff: fds must be integers");
      return NULL;
    }
  }
  const char* why = NULL;
  char word[256] = "";
  int32_t pid = 0;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  if (s < 0) why = "socket";
  else {
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr*)&sa, sizeof sa) != 0) why = "its socket refused";
  }
  if (!why) {
    // the 4-byte little-endian length, then the words (src/shim/handoff.ts); the fds ride with the first bytes
    unsigned char hdr[4] = {(unsigned char)(len & 0xff), (unsigned char)(len >> 8 & 0xff), (unsigned char)(len >> 16 & 0xff), (unsigned char)(len >> 24)};
    struct iovec iov[2] = {{hdr, 4}, {data, len}};
    ssize_t n = send_with_fds(s, iov, 2, fds, (int)nfds);
    size_t sent = n > 0 ? (size_t)n : 0, total = len + 4;
    // what the first sendmsg left: a long environment
    while (n > 0 && sent < total) {
      const char* from = sent < 4 ? (const char*)hdr + sent : (const char*)data + (sent - 4);
      size_t left = sent < 4 ? 4 - sent : total - sent;
      do n = send(s, from, left, MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n > 0) sent += (size_t)n;
    }
    if (sent < total) why = "sending the hand-over";
  }
  if (!why) {
    size_t w = 0;
    for (;;) {
      ssize_t r = read(s, word + w, 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0 || word[w] == '\n' || w == sizeof word - 2) break;
      w++;
    }
    word[w] = 0;
    if (!strncmp(word, "READY ", 6) && (pid = atoi(word + 6)) > 0) {
      ssize_t n;
      do n = send(s, "GO\n", 3, MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n != 3) pid = 0, why = "GO";
    } else why = word[0] ? word : "no READY";
  }
  if (s >= 0) close(s);
  napi_value v;
  if (pid > 0) napi_create_int32(env, pid, &v);
  else napi_create_string_utf8(env, why ? why : "no READY", NAPI_AUTO_LENGTH, &v);
  return v;
}

// A NETLINK_ROUTE socket: in the calling thread's namespace, or (from a thread that setns()
// first) in another's. The socket stays in the namespace it was made in.
static int netlink_socket(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -1;
  struct sockaddr_nl a;
  memset(&a, 0, sizeof a);
  a.nl_family = AF_NETLINK;
  if (bind(s, (struct sockaddr*)&a, sizeof a) != 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  // A kernel that never answers must not hang the agent: 5 s, then EAGAIN.
  struct timeval tv = {5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

static int netns_netlink(netns_job_t* job, const char** what) {
  (void)job;
  int s = netlink_socket();
  if (s < 0) *what = "netlink socket";
  return s;
}

// netlinkRoute(netnsPath?) → a NETLINK_ROUTE socket fd, in that network namespace or this one.
static napi_value NetlinkRoute(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t == napi_undefined || t == napi_null) {
    int s = netlink_socket();
    if (s < 0) return throw_errno(env, "netlink socket", errno);
    napi_value v;
    napi_create_int32(env, s, &v);
    return v;
  }
  netns_job_t j;
  memset(&j, 0, sizeof j);
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], j.netns, sizeof j.netns, &len) != napi_ok || len == 0 || len >= sizeof j.netns - 1) {
    napi_throw_type_error(env, NULL, "netlinkRoute(netnsPath?)");
    return NULL;
  }
  j.work = netns_netlink;
  return run_netns_job(env, &j);
}

// netlinkTalk(fd, request) → every reply to it, concatenated: one request (a whole nlmsghdr with
// its sequence number), read until its NLMSG_DONE (a dump) or NLMSG_ERROR (an ack, or its error).
// Replies to other sequence numbers (a late answer to an earlier request) are dropped.
static napi_value NetlinkTalk(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  void* req = NULL;
  size_t reqLen = 0;
  bool isBuf = false;
  if (argc < 2 || !get_i32(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &isBuf) != napi_ok || !isBuf ||
      napi_get_buffer_info(env, argv[1], &req, &reqLen) != napi_ok || reqLen < sizeof(struct nlmsghdr)) {
    napi_throw_type_error(env, NULL, "netlinkTalk(fd, request)");
    return NULL;
  }
  uint32_t seq = ((struct nlmsghdr*)req)->nlmsg_seq;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do n = sendto(fd, req, reqLen, 0, (struct sockaddr*)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "netlink send", errno);
  size_t cap = 65536, used = 0;
  char* out = malloc(cap);
  char* buf = malloc(65536);
  if (!out || !buf) {
    free(out);
    free(buf);
    return throw_errno(env, "netlink", ENOMEM);
  }
  bool done = false;
  while (!done) {
    do n = recv(fd, buf, 65536, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      int e = errno;
      free(out);
      free(buf);
      return throw_errno(env, "netlink receive", e);
    }
    if (n == 0) break;
    for (struct nlmsghdr* h = (struct nlmsghdr*)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue;
      size_t step = NLMSG_ALIGN(h->nlmsg_len);
      if (used + step > cap) {
        while (used + step > cap) cap *= 2;
        char* grown = realloc(out, cap);
        if (!grown) {
          free(out);
          free(buf);
          return throw_errno(env, "netlink", ENOMEM);
        }
        out = grown;
      }
      memset(out + used, 0, step);
      memcpy(out + used, h, h->nlmsg_len);
      used += step;
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) done = true;
    }
  }
  free(buf);
  napi_value result;
  void* data;
  if (napi_create_buffer_copy(env, used, out, &data, &result) != napi_ok) {
    free(out);
    napi_throw_error(env, NULL, "napi_create_buffer_copy failed");
    return NULL;
  }
  free(out);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setChildSubreaper", 0, SetChildSubreaper, 0, 0, 0, napi_default, 0},
      {"waitpid", 0, WaitPid, 0, 0, 0, napi_default, 0},
      {"mount", 0, Mount, 0, 0, 0, napi_default, 0},
      {"umount2", 0, Umount2, 0, 0, 0, napi_default, 0},
      {"setWinsize", 0, SetWinsize, 0, 0, 0, napi_default, 0},
      {"getWinsize", 0, GetWinsize, 0, 0, 0, napi_default, 0},
      {"openpty", 0, OpenPty, 0, 0, 0, napi_default, 0},
      {"setNonBlocking", 0, SetNonBlocking, 0, 0, 0, napi_default, 0},
      {"consoleListen", 0, ConsoleListen, 0, 0, 0, napi_default, 0},
      {"consoleReceive", 0, ConsoleReceive, 0, 0, 0, napi_default, 0},
      {"vsockConnect", 0, VsockConnect, 0, 0, 0, napi_default, 0},
      {"closeFd", 0, CloseFd, 0, 0, 0, napi_default, 0},
      {"setAsync", 0, SetAsync, 0, 0, 0, napi_default, 0},
      {"mapLatin1", 0, MapLatin1, 0, 0, 0, napi_default, 0},
      {"mallocTrim", 0, MallocTrim, 0, 0, 0, napi_default, 0},
      {"pipe", 0, Pipe, 0, 0, 0, napi_default, 0},
      {"listenUnix", 0, ListenUnix, 0, 0, 0, napi_default, 0},
      {"spawnDetached", 0, SpawnDetached, 0, 0, 0, napi_default, 0},
      {"listenTcpInNetns", 0, ListenTcpInNetns, 0, 0, 0, napi_default, 0},
      {"originalDst", 0, OriginalDst, 0, 0, 0, napi_default, 0},
      {"openTapInNetns", 0, OpenTapInNetns, 0, 0, 0, napi_default, 0},
      {"sendWithFd", 0, SendWithFd, 0, 0, 0, napi_default, 0},
      {"awaitHandoff", 0, AwaitHandoff, 0, 0, 0, napi_default, 0},
      {"handOff", 0, HandOff, 0, 0, 0, napi_default, 0},
      {"confirmHandoff", 0, ConfirmHandoff, 0, 0, 0, napi_default, 0},
      {"dup2", 0, Dup2, 0, 0, 0, napi_default, 0},
      {"adoptLimitsOf", 0, AdoptLimitsOf, 0, 0, 0, napi_default, 0},
      {"netlinkRoute", 0, NetlinkRoute, 0, 0, 0, napi_default, 0},
      {"netlinkTalk", 0, NetlinkTalk, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
