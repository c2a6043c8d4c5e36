/* web_download — the book's downloadPage (chapter 5): save a URL to a
 * file. The body is written as it arrives (to FILE.part, renamed to FILE
 * at the end, removed on a failure), so a large download holds little
 * memory. The deferred fires with nothing once the file is complete.
 *
 *   ./web_download URL FILE
 *   ./web_download http://127.0.0.1:8000/big.iso big.iso
 *
 * Exit status: 0 when the file was saved, 1 when not, 2 for bad usage.
 */
#include <sys/stat.h>

#include "web_common.h"

static const char *path;
static int failed;

static void saved(coil_deferred *d, void *arg)
{
    (void)d;
    struct stat st;
    if (stat(path, &st) == 0)
        printf("saved %s to %s (%lld bytes)\n", (const char *)arg, path,
               (long long)st.st_size);
}

static void print_error(coil_deferred *d, void *arg)
{
    (void)arg;
    fprintf(stderr, "web_download: %s\n", coil_failure_message(coil_deferred_failure(d)));
    failed = 1;
    coil_deferred_set_result(d, NULL, NULL); /* handled */
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s URL FILE\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    path = argv[2];
    /* A reactor, and agent = Agent(reactor) (web_common.h) */
    coil_reactor *r;
    coil_http_agent *agent;
    if (web_client_start("web_download", &r, &agent) != 0)
        return 1;

    /* d = downloadPage(url, file); d.addCallbacks(...); d.addBoth(stop) */
    coil_deferred *d = coil_http_download(agent, url, path);
    coil_deferred_add_callbacks(d, saved, print_error, (void *)url);
    coil_deferred_add_both(d, web_stop, r);
    coil_reactor_run(r);

    coil_deferred_unref(d);
    web_client_end(r, agent);
    return failed;
}
