#include "examples/common/stop.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

static sigset_t stop_signals(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

int example_block_stop_signals(void) {
  sigset_t set = stop_signals();
  int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (err != 0) {
    fprintf(stderr, "pthread_sigmask: %s\n", strerror(err));
    return -1;
  }
  return 0;
}

static int stdin_is_pipe(void) {
  struct stat st;
  return fstat(STDIN_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
}

const char *example_wait_for_stop(void) {
  sigset_t set = stop_signals();
  /* The signals are blocked (example_block_stop_signals), so they stay
   * pending until read from this fd: none can slip past us. */
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    fprintf(stderr, "signalfd: %s\n", strerror(errno));
    return NULL;
  }
  struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN},
                          {.fd = stdin_is_pipe() ? STDIN_FILENO : -1,
                           .events = POLLIN}};
  const char *why = NULL;
  while (why == NULL) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "poll: %s\n", strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo info;
      if (read(sfd, &info, sizeof info) == (ssize_t)sizeof info)
        why = info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
    } else if (fds[1].revents) {
      /* Drain whatever the parent wrote; only EOF (or an error) stops us. */
      char buf[256];
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) why = "stdin closed";
    }
  }
  close(sfd);
  return why;
}
