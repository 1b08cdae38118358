// containerd-shim-shimlab-v2's `start` and `delete` without Node, for the
// usual case only (bench/README.md, "start and delete: the options measured").
//
// containerd execs the shim binary for `start` and `delete` on every task;
// in Node each costs ~30 ms pinned, ~20 of them Node's own bootstrap. This
// launcher does what the TypeScript subcommands (src/shim/start.ts,
// src/shim/delete.ts) do when nothing is unusual, and exec()s the TypeScript
// shim (bin/containerd-shim-shimlab-v2.js, with the same argv and stdin) for
// everything else: any flag it does not know, an invalid id, a config.json it
// does not fully understand, containerd 2.x's bootstrap on stdin, a socket
// already bound, a VM record, anything mounted, a run dir still there. It never decides differently from the TypeScript code: it
// either does exactly what that would do, or hands over before it has changed
// anything the TypeScript path would see differently. test/unit/oneshot.test.ts
// runs both on the same inputs and compares what they print and leave behind.
//
// The rules it repeats (containerd's identifiers, the socket name, Kata's
// container-type keys, the limits) are the TypeScript ones; the test checks
// the constants below against the TypeScript modules' exports
// (SHIMLAB_ONESHOT_RULES=1 prints them).
//
// Built to bin/containerd-shim-shimlab-v2, the binary containerd runs (it
// runs the daemon, node and dist/bundle/shim-main.js, itself). SHIMLAB_NO_FAST=1
// hands everything to the TypeScript shim.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

// ---- the rules, as src/ has them ---------------------------------------------
// src/pod/container-type.ts TYPE_KEYS and SANDBOX_ID_KEYS, in Kata's order
static const char* const TYPE_KEYS[3] = {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType", "io.kubernetes.docker.type"};
static const char* const SANDBOX_ID_KEYS[3] = {"io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID", "io.kubernetes.sandbox.id"};
#define DEFAULT_SOCKET_DIR "/run/containerd/s" // src/shim/address.ts
#define SOCKET_PATH_LIMIT 106                  // src/shim/address.ts
#define MAX_IDENTIFIER_LENGTH 76               // src/shim/identifiers.ts
#define MAX_ANNOTATION_BYTES (256 << 10)       // src/shim/bundle.ts
#define DEFAULT_RUN_ROOT "/run/shimlab"        // src/hypervisor/rundir.ts
#define SIGKILL_STATUS 137                     // src/shim/delete.ts
#define SOCKET_DIR_LINK "s"                    // src/shim/start-v2.ts
#define LISTEN_BACKLOG 512                     // src/shim/start.ts
#define DEFAULT_FACTORY_SOCKET "/run/shimlab-factory/factory.sock" // src/hypervisor/factory/protocol.ts
#define HANDOFF_VERSION "shimlab-handoff-1"                          // src/shim/handoff.ts

// ---- handing over --------------------------------------------------------------
static char** g_argv;
static char g_repo[PATH_MAX];
static const unsigned char* g_stdin;
static const char *g_action = "?", *g_id = "?";
static size_t g_stdin_len;
static char g_config_path[PATH_MAX]; // the runtime options' ConfigPath, for the daemon's SHIMLAB_CONFIG

// SHIMLAB_ONESHOT_DEBUG=/a/file appends "what: why" there; =1 says it on stderr, when stderr may
// (never under containerd: `start`'s stderr is its answer).
static void debug_note(const char* what, const char* why, int on_stderr) {
  const char* dbg = getenv("SHIMLAB_ONESHOT_DEBUG");
  if (dbg && dbg[0] == '/') {
    int fd = open(dbg, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) dprintf(fd, "%s %s: %s: %s\n", g_action, g_id, what, why), close(fd);
  } else if (dbg && on_stderr) {
    fprintf(stderr, "shimlab oneshot: %s: %s\n", what, why);
  }
}

// exec()s the TypeScript shim with our argv; what we read of stdin goes back on fd 0.
static void __attribute__((noreturn)) hand_over(const char* why) {
  debug_note("to node", why, 1);
  if (g_stdin_len) {
    int m = memfd_create("shimlab-stdin", 0);
    if (m < 0) goto fail;
    for (size_t off = 0; off < g_stdin_len;) {
      ssize_t n = write(m, g_stdin + off, g_stdin_len - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        goto fail;
      }
      off += (size_t)n;
    }
    if (lseek(m, 0, SEEK_SET) != 0 || dup2(m, 0) < 0) goto fail;
    close(m);
  }
  char bin[PATH_MAX + 64];
  snprintf(bin, sizeof bin, "%s/bin/containerd-shim-shimlab-v2.js", g_repo);
  // an installed launcher names its Node (containerd's PATH may have none): run the script with it,
  // without the CA bundle its `env -S -u` line would have dropped
  const char* node = getenv("SHIMLAB_NODE");
  if (node && *node) {
    unsetenv("NODE_EXTRA_CA_CERTS");
    int argc = 0;
    while (g_argv[argc]) argc++;
    char** args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) goto fail;
    args[0] = (char*)node, args[1] = bin;
    for (int i = 1; i < argc; i++) args[i + 1] = g_argv[i];
    execv(node, args);
    goto fail;
  }
  execv(bin, g_argv);
fail:
  fprintf(stderr, "shimlab: cannot run the node shim: %s\n", strerror(errno));
  _exit(1);
}

// ---- flags: containerd's command line, only the forms it uses ----------------------
typedef struct {
  const char *namespace_, *id, *address, *publish_binary, *bundle, *socket;
  int debug;
  const char* action;
} flags_t;

static int parse_flags(int argc, char** argv, flags_t* f) {
  memset(f, 0, sizeof *f);
  f->namespace_ = f->id = f->address = f->publish_binary = f->bundle = f->socket = "";
  int i = 1;
  for (; i < argc; i++) {
    const char* a = argv[i];
    if (a[0] != '-' || !a[1]) break;
    if (!strcmp(a, "--")) return 0; // Go's terminator: unusual, the node shim knows it
    const char* name = a + (a[1] == '-' ? 2 : 1);
    if (!strcmp(name, "debug")) {
      f->debug = 1;
      continue;
    }
    const char** slot = !strcmp(name, "namespace") ? &f->namespace_
                        : !strcmp(name, "id") ? &f->id
                        : !strcmp(name, "address") ? &f->address
                        : !strcmp(name, "publish-binary") ? &f->publish_binary
                        : !strcmp(name, "bundle") ? &f->bundle
                        : !strcmp(name, "socket") ? &f->socket
                                                  : NULL;
    // -name=value, -v, -info, -debug=..., unknown flags, a missing value: the node shim's
    if (!slot || i + 1 >= argc) return 0;
    *slot = argv[++i];
  }
  f->action = i < argc ? argv[i] : "";
  return 1;
}

// containerd's identifiers.Validate (src/shim/identifiers.ts)
static int valid_id(const char* s) {
  size_t n = strlen(s);
  if (!n || n > MAX_IDENTIFIER_LENGTH) return 0;
  int need_alnum = 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) need_alnum = 0;
    else if ((c == '.' || c == '_' || c == '-') && !need_alnum) need_alnum = 1;
    else return 0;
  }
  return !need_alnum;
}

// Whether path.posix.join would leave p as it is: no empty, "." or ".." segment, no trailing slash.
static int clean_path(const char* p) {
  if (!*p) return 0;
  const char* s = p;
  if (*s == '/') s++;
  for (;;) {
    const char* e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    if (!e) return 1;
    s = e + 1;
  }
}

// ---- SHA-256 (FIPS 180-4), as src/util/sha256.ts ------------------------------------
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_hex(const char* msg, char out[65]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t len = strlen(msg), total = ((len + 9 + 63) / 64) * 64;
  unsigned char* b = calloc(total, 1);
  if (!b) abort();
  memcpy(b, msg, len);
  b[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) b[total - 1 - i] = (unsigned char)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[off + 4 * i] << 24 | (uint32_t)b[off + 4 * i + 1] << 16 | (uint32_t)b[off + 4 * i + 2] << 8 | b[off + 4 * i + 3];
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3), s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
      uint32_t t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = bb, bb = a, a = t1 + t2;
    }
    h[0] += a, h[1] += bb, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  free(b);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", h[i]);
}

// ---- config.json: JSON.parse's grammar, keeping only what placement and readBundleSpec read ----
// Any doubt (invalid JSON or UTF-8, a shape readBundleSpec refuses, nesting
// deeper than we go) makes json_* return 0, and the node shim decides.
typedef struct {
  const unsigned char *p, *end;
  char* buf; // the last string decoded
  size_t len, cap;
} json_t;

typedef struct {
  int has_type[3], has_sbx[3];
  char *type[3], *sbx[3];
} annotations_t;

static void ws(json_t* j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int put(json_t* j, unsigned char c) {
  if (j->len + 1 >= j->cap) {
    j->cap = j->cap ? j->cap * 2 : 256;
    if (!(j->buf = realloc(j->buf, j->cap))) abort();
  }
  j->buf[j->len++] = (char)c;
  j->buf[j->len] = 0;
  return 1;
}

static int hex4(json_t* j, unsigned* v) {
  if (j->end - j->p < 4) return 0;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = *j->p++;
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? c - 'a' + 10u : c >= 'A' && c <= 'F' ? c - 'A' + 10u : 16u;
    if (d > 15) return 0;
    *v = *v << 4 | d;
  }
  return 1;
}

// A string into j->buf. Non-ASCII (by escape or by byte) decodes as 0x80: no
// key we look for and no valid id holds it, so it can only ever lead to a
// "no match" that the TypeScript code would also see, or to handing over.
static int json_string(json_t* j) {
  j->len = 0;
  put(j, 0), j->len = 0;
  if (j->p >= j->end || *j->p != '"') return 0;
  j->p++;
  while (j->p < j->end) {
    unsigned char c = *j->p++;
    if (c == '"') return 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (j->p >= j->end) return 0;
      unsigned char e = *j->p++;
      unsigned v;
      switch (e) {
        case '"': case '\\': case '/': put(j, e); break;
        case 'b': put(j, '\b'); break;
        case 'f': put(j, '\f'); break;
        case 'n': put(j, '\n'); break;
        case 'r': put(j, '\r'); break;
        case 't': put(j, '\t'); break;
        case 'u':
          if (!hex4(j, &v)) return 0;
          put(j, v < 0x80 ? (unsigned char)v : 0x80);
          break;
        default: return 0;
      }
    } else if (c < 0x80) {
      put(j, c);
    } else {
      // strict UTF-8: Node would replace a bad sequence with U+FFFD; we would rather not guess
      int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
      if (n < 0 || c == 0xc0 || c == 0xc1 || c > 0xf4 || j->end - j->p < n) return 0;
      for (int i = 0; i < n; i++)
        if ((j->p[i] & 0xc0) != 0x80) return 0;
      if ((c == 0xe0 && j->p[0] < 0xa0) || (c == 0xed && j->p[0] >= 0xa0) || (c == 0xf0 && j->p[0] < 0x90) || (c == 0xf4 && j->p[0] >= 0x90)) return 0;
      j->p += n;
      put(j, 0x80);
    }
  }
  return 0;
}

static int json_value(json_t* j, int depth);

static int json_number(json_t* j) {
  const unsigned char* p = j->p;
#define DIGIT(x) ((x) >= '0' && (x) <= '9')
  if (p < j->end && *p == '-') p++;
  if (p >= j->end || !DIGIT(*p)) return 0;
  if (*p == '0') p++;
  else
    while (p < j->end && DIGIT(*p)) p++;
  if (p < j->end && *p == '.') {
    p++;
    if (p >= j->end || !DIGIT(*p)) return 0;
    while (p < j->end && DIGIT(*p)) p++;
  }
  if (p < j->end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < j->end && (*p == '+' || *p == '-')) p++;
    if (p >= j->end || !DIGIT(*p)) return 0;
    while (p < j->end && DIGIT(*p)) p++;
  }
  j->p = p;
  return 1;
}

static int json_literal(json_t* j, const char* w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return 0;
  j->p += n;
  return 1;
}

// Iterating an object or an array: 1 with the next member (key in j->buf for objects), 0 at its end, -1 on bad JSON.
static int json_next(json_t* j, int obj, int* first) {
  ws(j);
  if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
    j->p++;
    return 0;
  }
  if (!*first) {
    if (j->p >= j->end || *j->p != ',') return -1;
    j->p++;
    ws(j);
  }
  *first = 0;
  if (!obj) return 1;
  if (!json_string(j)) return -1;
  ws(j);
  if (j->p >= j->end || *j->p != ':') return -1;
  j->p++;
  ws(j);
  return 1;
}

#define MAX_DEPTH 200

static int json_value(json_t* j, int depth) {
  ws(j);
  if (j->p >= j->end || depth > MAX_DEPTH) return 0;
  int first = 1, r;
  switch (*j->p) {
    case '{':
    case '[': {
      int obj = *j->p++ == '{';
      while ((r = json_next(j, obj, &first)) == 1)
        if (!json_value(j, depth + 1)) return 0;
      return r == 0;
    }
    case '"': return json_string(j);
    case 't': return json_literal(j, "true");
    case 'f': return json_literal(j, "false");
    case 'n': return json_literal(j, "null");
    default: return json_number(j);
  }
}

static int key_index(const char* k, const char* const keys[3]) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(k, keys[i])) return i;
  return -1;
}

// The annotations object: every value a string, total size under the limit. JSON.parse keeps a key's last value.
static int json_annotations(json_t* j, annotations_t* a) {
  memset(a, 0, sizeof *a);
  ws(j);
  const unsigned char* start = j->p;
  if (j->p >= j->end || *j->p != '{') return 0;
  j->p++;
  int first = 1, r;
  while ((r = json_next(j, 1, &first)) == 1) {
    int t = key_index(j->buf, TYPE_KEYS), s = key_index(j->buf, SANDBOX_ID_KEYS);
    if (j->p >= j->end || *j->p != '"' || !json_string(j)) return 0; // a value that is not a string: refused by readBundleSpec
    if (t >= 0) free(a->type[t]), a->type[t] = strdup(j->buf), a->has_type[t] = 1;
    if (s >= 0) free(a->sbx[s]), a->sbx[s] = strdup(j->buf), a->has_sbx[s] = 1;
  }
  // readBundleSpec counts UTF-16 units of keys and values; the object's bytes are never fewer
  return r == 0 && (size_t)(j->p - start) <= MAX_ANNOTATION_BYTES;
}

// "process": an object (an array passes readBundleSpec too) whose args, if any, are strings.
static int json_process(json_t* j) {
  ws(j);
  if (j->p < j->end && *j->p == '[') return json_value(j, 1);
  if (j->p >= j->end || *j->p != '{') return 0;
  j->p++;
  int first = 1, r, args_ok = 1;
  while ((r = json_next(j, 1, &first)) == 1) {
    if (strcmp(j->buf, "args")) {
      if (!json_value(j, 2)) return 0;
      continue;
    }
    // the last "args" wins, as in JSON.parse
    ws(j);
    args_ok = j->p < j->end && *j->p == '[';
    if (!args_ok) {
      if (!json_value(j, 2)) return 0;
      continue;
    }
    j->p++;
    int f2 = 1, r2;
    while ((r2 = json_next(j, 0, &f2)) == 1) {
      ws(j);
      if (j->p < j->end && *j->p == '"') {
        if (!json_string(j)) return 0;
      } else {
        args_ok = 0;
        if (!json_value(j, 3)) return 0;
      }
    }
    if (r2 < 0) return 0;
  }
  return r == 0 && args_ok;
}

// A regular file of at most 64 MiB, whole, NUL-terminated (free it); NULL with *missing set when it does not exist.
static unsigned char* slurp(const char* file, size_t* len, int* missing) {
  *missing = 0;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *missing = errno == ENOENT;
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) {
    close(fd);
    return NULL;
  }
  size_t n = (size_t)st.st_size, got = 0;
  unsigned char* text = malloc(n + 1);
  if (!text) abort();
  while (got < n) {
    ssize_t r = read(fd, text + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != n) return free(text), NULL;
  text[n] = 0;
  *len = n;
  return text;
}

// A file that holds one JSON object, each member handed to member (key in j->buf), which must consume
// its value: 1 when the file is that object whole and every member was taken, else 0 (*missing: no file).
static int json_file_object(const char* file, int* missing, int (*member)(json_t*, void*), void* ctx) {
  size_t n;
  unsigned char* text = slurp(file, &n, missing);
  if (!text) return 0;
  json_t j = {text, text + n, NULL, 0, 0};
  ws(&j);
  int ok = j.p < j.end && *j.p == '{';
  if (ok) {
    j.p++;
    int first = 1, r;
    while (ok && (r = json_next(&j, 1, &first)) == 1) ok = member(&j, ctx);
    ok = ok && r == 0;
    ws(&j);
    ok = ok && j.p == j.end;
  }
  free(j.buf);
  free(text);
  return ok;
}

static int spec_member(json_t* j, void* a) {
  if (!strcmp(j->buf, "annotations")) return json_annotations(j, a);
  if (!strcmp(j->buf, "process")) return json_process(j);
  return json_value(j, 1);
}

// 1: *a holds the annotations (none when absent); 0: hand over.
static int read_spec(const char* file, annotations_t* a, int* missing) {
  memset(a, 0, sizeof *a);
  return json_file_object(file, missing, spec_member, a);
}

// A VM record's "pid": the last one wins, as in JSON.parse; only digits (no sign, fraction or exponent), below 2^31.
static int record_member(json_t* j, void* pid) {
  const unsigned char* v = j->p;
  int is_pid = !strcmp(j->buf, "pid"); // a string value overwrites j->buf
  if (!json_value(j, 1)) return 0;
  if (!is_pid) return 1;
  unsigned long long x = 0;
  const unsigned char* q = v;
  while (q < j->p && DIGIT(*q) && x < (1ull << 31)) x = x * 10 + (unsigned)(*q++ - '0');
  *(unsigned*)pid = (unsigned)x;
  return q == j->p && q > v && x < (1ull << 31) && (x == 0 || *v != '0');
}

// The pid of a VM record (vm.json, written by writeVmRecord) as delete.ts reports it: 1 with *pid (0 without
// a record), 0 to hand over (a record JSON.parse refuses, or a pid that is not a plain integer delete.ts would write).
static int read_vm_pid(const char* file, unsigned* pid) {
  *pid = 0;
  int missing;
  return json_file_object(file, &missing, record_member, pid) || missing;
}

// placement() of src/pod/container-type.ts: 1 with *type ('s' pod sandbox, 'c' pod container, '1' single) and the group; 0 when it would throw.
static int placement(const char* id, const annotations_t* a, char* type, const char** group) {
  for (int i = 0; i < 3; i++) {
    if (!a->has_type[i]) continue;
    const char* v = a->type[i];
    if (!strcmp(v, "sandbox") || !strcmp(v, "podsandbox")) return *type = 's', *group = id, 1;
    if (!strcmp(v, "container")) {
      for (int k = 0; k < 3; k++)
        if (a->has_sbx[k] && a->sbx[k][0]) return *type = 'c', *group = a->sbx[k], 1;
    }
    return 0;
  }
  *type = '1', *group = id;
  return 1;
}

// ---- files -----------------------------------------------------------------------------------
static int exists(const char* p) {
  struct stat st;
  return stat(p, &st) == 0;
}
static int lexists(const char* p) {
  struct stat st;
  return lstat(p, &st) == 0;
}

static int write_all(int fd, const void* data, size_t n) {
  const char* b = data;
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, b + off, n - off);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return 0;
    }
    off += (size_t)w;
  }
  return 1;
}

// writeFileAtomic of src/util/atomic-file.ts: <dir>/.<name>, 0600, renamed over <dir>/<name>.
static int write_atomic(const char* dir, const char* name, const char* data) {
  char tmp[PATH_MAX], dst[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/.%s", dir, name);
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  int ok = write_all(fd, data, strlen(data));
  close(fd);
  return ok && rename(tmp, dst) == 0;
}

static int mkdir_p(const char* dir, mode_t mode) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", dir);
  for (char* s = p + 1;; s++) {
    if (*s == '/' || !*s) {
      char c = *s;
      *s = 0;
      if (mkdir(p, mode) != 0 && errno != EEXIST) return 0;
      if (!(*s = c)) return 1;
    }
  }
}

// Whether /proc/self/mountinfo has a mount point at p, or below it when below is set.
// -1 when it cannot tell (p would need mountinfo's octal escapes): hand over.
static int mounted(const char* p, int below) {
  if (strpbrk(p, " \t\n\\")) return -1;
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) return 0; // as isMountPoint and mountsBelow: unreadable means nothing mounted
  char* line = NULL;
  size_t cap = 0, n = strlen(p);
  int hit = 0;
  while (!hit && getline(&line, &cap, f) > 0) {
    char* s = line;
    for (int i = 0; i < 4 && s; i++) s = strchr(s, ' '), s = s ? s + 1 : NULL;
    if (!s) continue;
    size_t m = strcspn(s, " \n");
    hit = (m == n && !memcmp(s, p, n)) || (below && m > n && !memcmp(s, p, n) && s[n] == '/');
  }
  free(line);
  fclose(f);
  return hit;
}

static const char* env_or(const char* k, const char* dflt) {
  const char* v = getenv(k);
  return v && *v ? v : dflt;
}

// ---- a parked daemon from the factory ----------------------------------------------------------
// With `[factory] enable = true` in the configuration the daemon will read, `start` asks the
// factory for a parked daemon (src/shim/park.ts) and hands it the listening socket, the log fifo,
// the daemon's argv, environment and directory instead of starting Node. Any failure or refusal
// on the way leaves everything as it was, and the daemon is spawned as without a factory. The
// parked daemon checks the configuration itself; what is read here only decides whether to ask.

// a start that goes on to spawn its daemon: said in the debug file only
static void warm_note(const char* why) {
  debug_note("no parked daemon", why, 0);
}

// The [factory] table's enable and socket, from the simplest TOML only (what the configuration
// files here look like): 1 with the socket when enable = true is all it can find about the
// factory; 0 when it is off, absent, or written in a form this scanner does not know.
static int factory_socket(const char* file, char* out, size_t cap) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static char text[1 << 16];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0 || n == (ssize_t)sizeof text - 1) return 0;
  text[n] = 0;
  if (strstr(text, "\"\"\"") || strstr(text, "'''") || memchr(text, 0, (size_t)n)) return 0;
  int in_factory = 0, tables = 0, enable = 0;
  snprintf(out, cap, "%s", DEFAULT_FACTORY_SOCKET);
  for (char* line = text; line && *line;) {
    char* next = strchr(line, '\n');
    if (next) *next++ = 0;
    while (*line == ' ' || *line == '\t') line++;
    size_t len = strlen(line);
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r')) line[--len] = 0;
    char* c = line;
    if (!*c || *c == '#') {
      line = next;
      continue;
    }
    if (*c == '[') {
      char name[64];
      int end = 0;
      if (sscanf(c, "[ %63[A-Za-z0-9_-] ]%n", name, &end) == 1 && end > 0 && (!c[end] || c[end] == ' ' || c[end] == '\t' || c[end] == '#')) {
        in_factory = !strcmp(name, "factory");
        if (in_factory && tables++) return 0; // twice: TOML's error
      } else {
        if (strstr(c, "factory")) return 0; // [factory.x], [[factory]], quoted: not ours to read
        in_factory = 0;
      }
      line = next;
      continue;
    }
    if (!in_factory) {
      // a root key naming the factory (factory.enable = ..., factory = { ... }) comes before any table
      if (!strncmp(c, "factory", 7) && !isalnum((unsigned char)c[7]) && c[7] != '_' && c[7] != '-') return 0;
      line = next;
      continue;
    }
    char key[32];
    int vo = 0;
    if (sscanf(c, "%31[A-Za-z0-9_-] = %n", key, &vo) != 1 || vo == 0) return 0;
    char* v = c + vo;
    char* rest;
    if (!strcmp(key, "enable")) {
      if (!strncmp(v, "true", 4)) enable = 1, rest = v + 4;
      else if (!strncmp(v, "false", 5)) enable = 0, rest = v + 5;
      else return 0;
    } else if (!strcmp(key, "socket")) {
      char q = *v;
      if (q != '"' && q != '\'') return 0;
      char* e = strchr(v + 1, q);
      if (!e || memchr(v + 1, '\\', (size_t)(e - v - 1)) || (size_t)(e - v - 1) >= cap) return 0;
      snprintf(out, cap, "%.*s", (int)(e - v - 1), v + 1);
      rest = e + 1;
    } else if (!strcmp(key, "pool_size") || !strcmp(key, "daemon_pool_size")) {
      rest = v + strspn(v, "0123456789");
    } else {
      return 0;
    }
    while (*rest == ' ' || *rest == '\t') rest++;
    if (*rest && *rest != '#') return 0;
    line = next;
  }
  return enable && out[0] == '/';
}

static int unix_connect(const char* p, int timeout_ms) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(p) >= sizeof sa.sun_path) return -1;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr*)&sa, sizeof sa) != 0) return close(s), -1;
  return s;
}

// One line (up to '\n', which is dropped) into b; 0 on a timeout, EOF or a line too long.
static int read_line(int s, char* b, size_t cap) {
  size_t n = 0;
  b[0] = 0;
  while (n < cap - 1) {
    ssize_t r = read(s, b + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return b[n] = 0, 0;
    if (b[n] == '\n') {
      b[n] = 0;
      return 1;
    }
    n++;
  }
  b[n] = 0;
  return 0;
}

// The daemon's pid once a parked daemon took the socket and said READY; 0 when none did.
static pid_t warm_daemon(int listen_fd, int log, const char* cwd, const char* node, const char* script, const char* const* args, char* const* envp) {
  const char* config = *g_config_path ? g_config_path : getenv("SHIMLAB_CONFIG");
  char factory[PATH_MAX];
  if (!config || !*config || !factory_socket(config, factory, sizeof factory)) return 0;
  int s = unix_connect(factory, 1000);
  if (s < 0) return warm_note("no factory answers"), 0;
  // our pid: the factory moves the next parked daemons into our cgroups (containerd's) ahead of time
  char ask[64];
  int asklen = snprintf(ask, sizeof ask, "{\"op\":\"daemon\",\"pid\":%d}\n", (int)getpid());
  char answer[PATH_MAX + 256];
  int ok = write_all(s, ask, (size_t)asklen) && read_line(s, answer, sizeof answer);
  close(s);
  // {"ok":true,"daemon":{"pid":N,"socket":"..."}}: JSON.stringify's, from src/hypervisor/factory/service.ts
  const char* k = ok && !strncmp(answer, "{\"ok\":true,", 11) ? strstr(answer, "\"socket\":\"") : NULL;
  char* e = k ? strchr(k + 10, '"') : NULL;
  if (!e || memchr(k + 10, '\\', (size_t)(e - k - 10))) return warm_note(ok ? answer : "the factory did not answer"), 0;
  char park[PATH_MAX];
  snprintf(park, sizeof park, "%.*s", (int)(e - k - 10), k + 10);
  s = unix_connect(park, 2000);
  if (s < 0) return warm_note("its socket refused"), 0;

  // the hand-over: a 4-byte little-endian length, then NUL-terminated fields (src/shim/park.ts parseHandoff)
  size_t cap = 4096, len = 4;
  char* b = malloc(cap);
  if (!b) abort();
#define ADD(str)                                     \
  do {                                               \
    size_t l_ = strlen(str) + 1;                     \
    while (len + l_ > cap)                           \
      if (!(b = realloc(b, cap *= 2))) abort();      \
    memcpy(b + len, (str), l_), len += l_;           \
  } while (0)
  int nargs = 0;
  while (args[2 + nargs]) nargs++;
  char count[16];
  snprintf(count, sizeof count, "%d", nargs);
  ADD(HANDOFF_VERSION);
  ADD(node);
  ADD(script);
  ADD(cwd);
  ADD(factory);
  ADD(count);
  for (int i = 0; i < nargs; i++) ADD(args[2 + i]);
  for (char* const* v = envp; *v; v++) ADD(*v);
#undef ADD
  uint32_t body = (uint32_t)(len - 4);
  b[0] = (char)(body & 0xff), b[1] = (char)(body >> 8 & 0xff), b[2] = (char)(body >> 16 & 0xff), b[3] = (char)(body >> 24);
  int fds[2] = {listen_fd, log};
  int nfds = log >= 0 ? 2 : 1;
  char ctrl[CMSG_SPACE(sizeof fds)];
  memset(ctrl, 0, sizeof ctrl);
  struct iovec iov = {b, len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
  struct cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  ssize_t sent;
  do sent = sendmsg(s, &m, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  // the rest without fds, when the environment was long
  ok = sent > 0 && write_all(s, b + sent, len - (size_t)sent);
  free(b);
  char word[256];
  word[0] = 0;
  pid_t pid = 0;
  if (ok && read_line(s, word, sizeof word) && !strncmp(word, "READY ", 6)) pid = (pid_t)atoi(word + 6);
  // GO commits both sides: a daemon that hears nothing exits, and never serves this socket
  if (pid <= 0 || !write_all(s, "GO\n", 3)) {
    warm_note(*word ? word : "no READY");
    pid = 0;
  }
  close(s);
  return pid;
}

// ---- start -----------------------------------------------------------------------------------
static char* find_node(void) {
  static char out[PATH_MAX];
  // `shimlab install` names the Node to run (SHIMLAB_NODE); else the first on PATH, as the bin's `env node`
  const char* pinned = getenv("SHIMLAB_NODE");
  if (pinned && *pinned) return access(pinned, X_OK) == 0 ? snprintf(out, sizeof out, "%s", pinned), out : NULL;
  const char* path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char* s = path;;) {
    const char* e = strchr(s, ':');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(out, sizeof out, "%.*s/node", (int)n, n ? s : ".");
    if (access(out, X_OK) == 0) return out;
    if (!e) return NULL;
    s = e + 1;
  }
}

// 0 when something accepts on p, else the errno of the connect.
static int try_connect(const char* p) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return errno;
  int e = connect(s, (struct sockaddr*)&sa, sizeof sa) == 0 ? 0 : errno;
  close(s);
  return e;
}

// daemonEnding() of delete.ts: the daemon in bundle's shim.pid is gone, a zombie or exiting (PF_EXITING in
// /proc/<pid>/stat's flags); 0 without a record. -1: a record this cannot read as delete.ts does, so hand over.
static int daemon_ending(const char* bundle) {
  char f[PATH_MAX + 16], buf[64];
  snprintf(f, sizeof f, "%s/shim.pid", bundle);
  int fd = open(f, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0 || n >= (ssize_t)sizeof buf - 1) return -1;
  buf[n] = 0;
  char* end;
  long pid = strtol(buf, &end, 10);
  while (*end == '\n' || *end == ' ' || *end == '\t' || *end == '\r') end++;
  if (end == buf || *end || pid <= 0 || pid > 0x3fffffff || !DIGIT(buf[0])) return -1;
  char stat[4096];
  snprintf(f, sizeof f, "/proc/%ld/stat", pid);
  fd = open(f, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 1;
  stat[n] = 0;
  char* p = strrchr(stat, ')');
  if (!p || p[1] != ' ') return -1;
  // after ") ": state, ppid, pgrp, session, tty_nr, tpgid, flags
  char state = p[2];
  if (state == 'Z' || state == 'X') return 1;
  p += 2;
  for (int i = 0; i < 6; i++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  unsigned long flags = strtoul(p, NULL, 10);
  return (flags & 0x4) != 0; // PF_EXITING
}

// ---- runtime options on stdin ----------------------------------------------------------
// containerd 1.6/1.7 write the runtime's options on `start`'s stdin: for a shimlab handler of CRI,
// an Any of runtimeoptions.v1.Options {1 type_url, 2 config_path, 3 config_body}. The daemon is
// told the ConfigPath (SHIMLAB_CONFIG), as start-v2.ts does. Anything else is the node shim's.
static int pb_varint(const unsigned char** p, const unsigned char* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    unsigned char c = *(*p)++;
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return 1;
  }
  return 0;
}

// The length-delimited fields 1..n of a message into v[]/l[] (absent: NULL); 0 for any other field or wire type.
static int pb_fields(const unsigned char* b, size_t len, int n, const unsigned char** v, size_t* l) {
  for (int i = 0; i < n; i++) v[i] = NULL, l[i] = 0;
  const unsigned char *p = b, *end = b + len;
  while (p < end) {
    uint64_t tag, size;
    if (!pb_varint(&p, end, &tag) || (tag & 7) != 2 || (tag >> 3) < 1 || (tag >> 3) > (uint64_t)n) return 0;
    if (!pb_varint(&p, end, &size) || size > (uint64_t)(end - p)) return 0;
    v[(tag >> 3) - 1] = p, l[(tag >> 3) - 1] = (size_t)size;
    p += size;
  }
  return 1;
}

static int is_str(const unsigned char* v, size_t l, const char* want) {
  return v && l == strlen(want) && !memcmp(v, want, l);
}

// 1 with out = the ConfigPath ("" for none) when b is runtimeoptions.v1.Options in an Any and nothing more.
static int runtime_options(const unsigned char* b, size_t len, char* out, size_t cap) {
  const unsigned char* v[3];
  size_t l[3];
  *out = 0;
  if (!pb_fields(b, len, 2, v, l)) return 0;
  if (!is_str(v[0], l[0], "runtimeoptions.v1.Options") && !is_str(v[0], l[0], "type.googleapis.com/runtimeoptions.v1.Options")) return 0;
  if (!v[1]) return 1;
  if (!pb_fields(v[1], l[1], 3, v, l) || l[2] || l[1] >= cap) return 0;
  if (!v[1]) return 1; // no config_path
  if (memchr(v[1], 0, l[1])) return 0;
  memcpy(out, v[1], l[1]), out[l[1]] = 0;
  return 1;
}

// The daemon serves: its pid in shim.pid, the address on stdout for containerd, and done.
static void __attribute__((noreturn)) started(pid_t pid, int listen_fd, const char* cwd, const char* address) {
  char pids[24];
  snprintf(pids, sizeof pids, "%d", (int)pid);
  if (!write_atomic(cwd, "shim.pid", pids)) {
    fprintf(stderr, "shimlab start: cannot write shim.pid: %s\n", strerror(errno));
    _exit(1);
  }
  close(listen_fd);
  write_all(1, address, strlen(address));
  _exit(0);
}

static void __attribute__((noreturn)) do_start(const flags_t* f) {
  // containerd 2.x (a bootstrap on stdin, a sandbox bundle) and asked-for protocols are the node shim's
  if (getenv("MAX_SHIM_VERSION") || getenv("SHIMLAB_SHIM_PROTOCOL")) hand_over("containerd 2.x or a protocol asked for");
  struct stat st;
  if (fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode))) {
    // as readStdin: read it whole; anything in it is for the node shim, which gets it back
    size_t cap = 0;
    unsigned char* b = NULL;
    for (;;) {
      if (g_stdin_len == cap) {
        cap = cap ? cap * 2 : 4096;
        if (!(b = realloc(b, cap))) abort();
      }
      ssize_t n = read(0, b + g_stdin_len, cap - g_stdin_len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        usleep(2000);
        continue;
      }
      if (n <= 0) break;
      g_stdin_len += (size_t)n;
      g_stdin = b;
      if (g_stdin_len > (10u << 20)) hand_over("stdin too large");
    }
    if (g_stdin_len && !runtime_options(g_stdin, g_stdin_len, g_config_path, sizeof g_config_path)) hand_over("options on stdin");
  }
  if (!valid_id(f->namespace_) || !valid_id(f->id)) hand_over("invalid namespace or id");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) hand_over("getcwd");
  char file[PATH_MAX + 16];
  snprintf(file, sizeof file, "%s/config.json", cwd);
  annotations_t a;
  int missing;
  char type;
  const char* group;
  if (!read_spec(file, &a, &missing) || !placement(f->id, &a, &type, &group) || !valid_id(group)) hand_over("config.json");

  const char* dir = env_or("SHIMLAB_SOCKET_DIR", DEFAULT_SOCKET_DIR);
  if (!clean_path(dir) || (*f->address && !clean_path(f->address))) hand_over("a path to normalise");
  char key[PATH_MAX * 2], hash[65], sock[PATH_MAX + 80], address[PATH_MAX + 90];
  snprintf(key, sizeof key, "%s%s%s/%s", f->address, *f->address ? "/" : "", f->namespace_, group);
  sha256_hex(key, hash);
  snprintf(sock, sizeof sock, "%s/%s", dir, hash);
  if (strlen(sock) > SOCKET_PATH_LIMIT) hand_over("socket path too long");
  snprintf(address, sizeof address, "unix://%s", sock);

  if (type == 'c') {
    // joining the pod: its shim must answer, else the node shim says why not
    if (!exists(sock) || try_connect(sock) != 0) hand_over("no shim serves the sandbox");
    if (!write_atomic(cwd, "address", address)) hand_over("address file");
    write_all(1, address, strlen(address));
    _exit(0);
  }

  if (!mkdir_p(dir, 0700)) hand_over("socket dir");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) hand_over("socket");
  // EADDRINUSE (a live shim to reuse, or a stale socket) and every other failure: the node shim's call
  if (bind(s, (struct sockaddr*)&sa, sizeof sa) != 0) close(s), hand_over("bind");
  if (listen(s, LISTEN_BACKLOG) != 0 || chmod(sock, 0600) != 0) close(s), unlink(sock), hand_over("listen");

  char logp[PATH_MAX + 8];
  snprintf(logp, sizeof logp, "%s/log", cwd);
  // containerd opened this fifo O_RDWR before running us, so this open cannot block
  int log = open(logp, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  char node_path[PATH_MAX];
  const char* node = find_node();
  if (!node) close(s), unlink(sock), hand_over("no node on PATH");
  snprintf(node_path, sizeof node_path, "%s", node);
  // before the launch, as start.ts: from then on the daemon competes for the CPU
  if (!write_atomic(cwd, "address", address)) close(s), unlink(sock), hand_over("address file");

  char script[PATH_MAX + 64];
  snprintf(script, sizeof script, "%s/dist/bundle/shim-main.js", g_repo);
  // daemonArgs of src/shim/flags.ts, after the node binary and the script, as start.ts gives them
  const char* args[16];
  int n = 0;
  args[n++] = node_path, args[n++] = script;
  args[n++] = "-namespace", args[n++] = f->namespace_, args[n++] = "-id", args[n++] = f->id, args[n++] = "-address", args[n++] = f->address;
  if (*f->publish_binary) args[n++] = "-publish-binary", args[n++] = f->publish_binary;
  args[n++] = "-socket", args[n++] = sock;
  if (f->debug) args[n++] = "-debug";
  args[n] = NULL;
  size_t ne = 0;
  for (char** e = environ; *e; e++) ne++;
  char** envp = calloc(ne + 2, sizeof *envp);
  size_t k = 0;
  for (char** e = environ; *e; e++)
    if (strncmp(*e, "NODE_EXTRA_CA_CERTS=", 20) && strncmp(*e, "SHIMLAB_DAEMON_PROTOCOL=", 24) && (!*g_config_path || strncmp(*e, "SHIMLAB_CONFIG=", 15))) envp[k++] = *e;
  char config_env[PATH_MAX + 16];
  if (*g_config_path) snprintf(config_env, sizeof config_env, "SHIMLAB_CONFIG=%s", g_config_path), envp[k++] = config_env;
  envp[k] = NULL;

  pid_t warm = warm_daemon(s, log, cwd, node_path, script, args, envp);
  if (warm > 0) {
    if (log >= 0) close(log);
    started(warm, s, cwd, address);
  }

  // spawnDetached of native/shimlab.c: a new session, default signals, an empty mask, fds 0-3 only
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  int fds[4] = {-1, -1, log, s};
  for (int i = 0; i < 4; i++) {
    if (fds[i] < 0) posix_spawn_file_actions_addopen(&fa, 100 + i, "/dev/null", O_RDWR, 0);
    else posix_spawn_file_actions_adddup2(&fa, fds[i], 100 + i);
  }
  for (int i = 0; i < 4; i++) posix_spawn_file_actions_adddup2(&fa, 100 + i, i), posix_spawn_file_actions_addclose(&fa, 100 + i);
  posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int err = posix_spawn(&pid, node_path, &fa, &attr, (char* const*)args, envp);
  if (log >= 0) close(log);
  if (err != 0) {
    // undone as start.ts undoes it; the node shim then tries, and reports, itself
    snprintf(logp, sizeof logp, "%s/address", cwd);
    unlink(logp);
    close(s);
    unlink(sock);
    hand_over("posix_spawn");
  }
  started(pid, s, cwd, address);
}

// ---- delete ----------------------------------------------------------------------------------
static size_t varint(unsigned char* b, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) b[n++] = (unsigned char)(v | 0x80), v >>= 7;
  b[n++] = (unsigned char)v;
  return n;
}

static void __attribute__((noreturn)) do_delete(const flags_t* f) {
  if (!valid_id(f->namespace_) || !valid_id(f->id)) hand_over("invalid namespace or id");
  char cwd[PATH_MAX];
  const char* bundle = f->bundle;
  if (!*bundle) {
    if (!getcwd(cwd, sizeof cwd)) hand_over("getcwd");
    bundle = cwd;
  }
  if (!clean_path(bundle)) hand_over("a bundle path to normalise");
  char file[PATH_MAX + 16];
  snprintf(file, sizeof file, "%s/config.json", bundle);
  annotations_t a;
  int missing;
  char type = '1';
  const char* group = f->id;
  // delete.ts treats an unreadable spec as a single container; only "no such file" is that simple here
  if (!read_spec(file, &a, &missing)) {
    if (!missing) hand_over("config.json");
  } else if (!placement(f->id, &a, &type, &group)) {
    hand_over("placement");
  }
  if (!valid_id(group)) hand_over("invalid sandbox id");

  const char* root = env_or("SHIMLAB_RUN_DIR", DEFAULT_RUN_ROOT);
  const char* dir = env_or("SHIMLAB_SOCKET_DIR", DEFAULT_SOCKET_DIR);
  if (!clean_path(root) || !clean_path(dir) || (*f->address && !clean_path(f->address))) hand_over("a path to normalise");
  char run_dir[PATH_MAX], p[PATH_MAX + 80];
  snprintf(run_dir, sizeof run_dir, "%s/%s/%s", root, f->namespace_, group);
  // containerd 2.x's socket dir link: the node shim finds the socket through it
  snprintf(p, sizeof p, "%s/%s", bundle, SOCKET_DIR_LINK);
  if (lexists(p)) hand_over("a socket dir link");
  char key[PATH_MAX * 2], hash[65];
  snprintf(key, sizeof key, "%s%s%s/%s", f->address, *f->address ? "/" : "", f->namespace_, group);
  sha256_hex(key, hash);
  snprintf(p, sizeof p, "%s/%s", dir, hash);
  if (strlen(p) > SOCKET_PATH_LIMIT) hand_over("socket path too long");
  // isServing of start.ts: a socket that accepts is a live shim, and then this id's cleanup is its own.
  // containerd runs `delete` as soon as the daemon's connection drops, often before the daemon has
  // unlinked its socket: a refused connect is the usual case, not an unusual one.
  struct stat st;
  int alive = 0, stale = 0; // neither: no socket at all
  if (lstat(p, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) hand_over("something other than a socket at the socket path");
    int e = try_connect(p);
    if (e == 0) {
      // containerd runs delete when the connection drops: a SIGKILLed daemon may still accept while the kernel closes its files
      int ending = daemon_ending(bundle);
      if (ending < 0) hand_over("shim.pid");
      if (ending) e = ECONNREFUSED;
    }
    if (e == 0) alive = 1;
    else if (e == ECONNREFUSED || e == ENOENT) stale = 1;
    else hand_over("a socket that neither accepts nor refuses");
  }
  // a VM record: the node shim reaps what a dead shim left; a live one (its sandbox still stopping after the last
  // Delete) keeps it, and only its pid is reported
  unsigned vm_pid = 0;
  char record[PATH_MAX + 16];
  snprintf(record, sizeof record, "%s/vm.json", run_dir);
  if (!alive && exists(record)) hand_over("a VM record");
  if (alive && !read_vm_pid(record, &vm_pid)) hand_over("a VM record to read");
  if (!alive && type != 'c') {
    // the shim is gone and so must be what it ran: here, nothing was left
    if (mounted(run_dir, 1) != 0) hand_over("mounts under the run dir");
    if (lexists(run_dir)) hand_over("a run dir");
    char marker[PATH_MAX + 96];
    snprintf(marker, sizeof marker, "%s.stopping", p);
    if (lexists(marker)) hand_over("a stopping marker (src/shim/stopping.ts)");
    // rmIfPresent(sock); gone meanwhile (the daemon's own exit unlinks it) is as good
    if (stale && unlink(p) != 0 && errno != ENOENT) hand_over("unlink the socket");
  }
  snprintf(p, sizeof p, "%s/rootfs", bundle);
  if (mounted(p, 0) != 0) hand_over("a mounted rootfs");

  // containerd.task.v2.DeleteResponse{pid, exit_status=137, exited_at}, as deleteResponse() in delete.ts (no pid without a VM record)
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t sec = (uint64_t)ts.tv_sec;
  uint32_t nanos = (uint32_t)(ts.tv_nsec / 1000000) * 1000000; // a JS Date's milliseconds
  unsigned char ts_msg[32], out[48];
  size_t tn = 0, n = 0;
  ts_msg[tn++] = 8, tn += varint(ts_msg + tn, sec);
  if (nanos) ts_msg[tn++] = 16, tn += varint(ts_msg + tn, nanos);
  if (vm_pid) out[n++] = 8, n += varint(out + n, vm_pid);
  out[n++] = 16, n += varint(out + n, SIGKILL_STATUS);
  out[n++] = 26, n += varint(out + n, tn);
  memcpy(out + n, ts_msg, tn), n += tn;
  write_all(1, out, n);
  _exit(0);
}

int main(int argc, char** argv) {
  g_argv = argv;
  // <repo>/bin/<this binary> (symlinks resolved, as npm's .bin links are): the node shim and the bundle are in <repo>
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return fprintf(stderr, "shimlab: /proc/self/exe: %s\n", strerror(errno)), 1;
  exe[n] = 0;
  for (int up = 0; up < 2; up++) {
    char* s = strrchr(exe, '/');
    if (!s || s == exe) return fprintf(stderr, "shimlab: cannot place %s\n", exe), 1;
    *s = 0;
  }
  snprintf(g_repo, sizeof g_repo, "%s", exe);
  if (getenv("SHIMLAB_ONESHOT_RULES")) {
    printf("{\"typeKeys\":[\"%s\",\"%s\",\"%s\"],\"sandboxIdKeys\":[\"%s\",\"%s\",\"%s\"],\"defaultSocketDir\":\"%s\",\"socketPathLimit\":%d,"
           "\"maxIdentifierLength\":%d,\"maxAnnotationBytes\":%d,\"defaultRunRoot\":\"%s\",\"sigkillStatus\":%d,\"socketDirLink\":\"%s\","
           "\"defaultFactorySocket\":\"%s\",\"handoffVersion\":\"%s\"}\n",
           TYPE_KEYS[0], TYPE_KEYS[1], TYPE_KEYS[2], SANDBOX_ID_KEYS[0], SANDBOX_ID_KEYS[1], SANDBOX_ID_KEYS[2], DEFAULT_SOCKET_DIR, SOCKET_PATH_LIMIT,
           MAX_IDENTIFIER_LENGTH, MAX_ANNOTATION_BYTES, DEFAULT_RUN_ROOT, SIGKILL_STATUS, SOCKET_DIR_LINK, DEFAULT_FACTORY_SOCKET, HANDOFF_VERSION);
    return 0;
  }
  const char* probe = getenv("SHIMLAB_ONESHOT_FACTORY_OF");
  if (probe) {
    // what the scanner makes of a configuration, for test/unit/oneshot.test.ts to hold against loadConfig
    char sock[PATH_MAX];
    if (factory_socket(probe, sock, sizeof sock)) printf("%s\n", sock);
    return 0;
  }
  flags_t f;
  if (getenv("SHIMLAB_NO_FAST") || getenv("SHIMLAB_TRACE") || getenv("SHIMLAB_NO_BUNDLE")) hand_over("asked for");
  if (!parse_flags(argc, argv, &f)) hand_over("flags");
  g_action = f.action, g_id = f.id;
  // the bin uses the bundle only when it is newer than tsc's last build; a stale one is not ours to launch
  char b[PATH_MAX + 64], t[PATH_MAX + 64];
  struct stat sb, st;
  snprintf(b, sizeof b, "%s/dist/bundle/shim-main.js", g_repo);
  snprintf(t, sizeof t, "%s/dist/.tsbuildinfo", g_repo);
  if (stat(b, &sb) != 0) hand_over("no bundle");
  if (stat(t, &st) == 0 && (sb.st_mtim.tv_sec < st.st_mtim.tv_sec || (sb.st_mtim.tv_sec == st.st_mtim.tv_sec && sb.st_mtim.tv_nsec < st.st_mtim.tv_nsec)))
    hand_over("stale bundle");
  if (!strcmp(f.action, "start")) do_start(&f);
  if (!strcmp(f.action, "delete")) do_delete(&f);
  hand_over("not start or delete");
}
