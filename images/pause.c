/*
 * minik8s pause: the first process of every pod sandbox.
 *
 * It only has to stay alive so the pod's namespaces have an owner, and, being PID 1 when
 * the pod shares its PID namespace, reap orphans. SIGTERM/SIGINT end it cleanly (exit 0) so
 * StopPodSandbox does not wait for a SIGKILL.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "minik8s-pause 3.9\n"

static void on_terminate(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    int saved_errno = errno;

    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved_errno;
}

static int install(int sig, void (*handler)(int), int flags)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    return sigaction(sig, &action, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        (void)!write(STDOUT_FILENO, VERSION, sizeof(VERSION) - 1);
        return 0;
    }
    if (install(SIGINT, on_terminate, 0) < 0 || install(SIGTERM, on_terminate, 0) < 0 ||
        install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
        static const char msg[] = "pause: sigaction failed\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        return 1;
    }
    for (;;)
        pause();
}
