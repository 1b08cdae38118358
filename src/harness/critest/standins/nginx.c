/* Stand-in for the nginx images critest uses (e2e-test-images/nginx:1.14-2 and
 * hostnet-nginx): what critest observes of nginx and nothing more.
 *   - the process title "nginx: master process nginx -g daemon off;" (PodPID and
 *     ContainerPID specs read /proc/1/cmdline), comm and /proc/PID/exe "nginx"
 *     (HostPID spec: pidof nginx);
 *   - /var/run/nginx.pid holding its pid;
 *   - HTTP/1.0 200 with nginx's welcome page on every request, on port
 *     NGINX_PORT (default 80; the hostnet image sets 12003);
 *   - exits 0 on SIGTERM/SIGINT/SIGQUIT like nginx's master. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TITLE "nginx: master process nginx -g daemon off;"
static const char page[] =
    "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n"
    "<h1>Welcome to nginx!</h1>\n<p>critest stand-in</p>\n</body>\n</html>\n";

static void bye(int sig) { (void)sig; unlink("/var/run/nginx.pid"); _exit(0); }

int main(int argc, char **argv) {
  (void)argc;
  if (strcmp(argv[0], TITLE) != 0) {
    char *nargv[] = {TITLE, NULL};
    execv("/usr/sbin/nginx", nargv);
    perror("re-exec /usr/sbin/nginx");
  }
  signal(SIGTERM, bye); signal(SIGINT, bye); signal(SIGQUIT, bye);
  signal(SIGPIPE, SIG_IGN); signal(SIGCHLD, SIG_IGN);
  int port = 80;
  const char *p = getenv("NGINX_PORT");
  if (p && *p) port = atoi(p);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) { perror("nginx stand-in: listen"); return 1; }
  FILE *f = fopen("/var/run/nginx.pid", "w");
  if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
  fprintf(stderr, "nginx stand-in: listening on %d\n", port);
  char hdr[256], buf[4096];
  int hl = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nServer: nginx/1.14.2\r\nContent-Type: text/html\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", sizeof page - 1);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
    ssize_t n = read(c, buf, sizeof buf); (void)n;
    if (write(c, hdr, hl) < 0 || write(c, page, sizeof page - 1) < 0) {}
    close(c);
  }
}
