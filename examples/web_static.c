/* web_static — the book's static site (chapter 4): a folder served as it
 * is, Twisted's File resource. Files get a Content-Type from their
 * extension; folders show their index.html or an escaped listing; nothing
 * outside the folder is served ("..", symlinks out of it).
 *
 *   ./web_static [--port PORT] [DIR]   (DIR: the current folder by default)
 *   curl http://127.0.0.1:8000/                   the listing or index.html
 *   curl -O http://127.0.0.1:8000/notes.txt       one file
 *   curl -r 0-99 http://127.0.0.1:8000/big.bin    a range of it (206)
 */
#include "web_common.h"

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc > 2) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT] [DIR]\n", argv[0]);
        return 2;
    }
    const char *dir = argc == 2 ? argv[1] : ".";

    /* File("/var/www/mysite"): the folder becomes the site's root. */
    coil_http_resource *root;
    coil_failure *err = NULL;
    if (coil_http_file_new(dir, NULL, &root, &err) != 0) {
        fprintf(stderr, "web_static: %s\n", coil_failure_message(err));
        coil_failure_free(err);
        return 1;
    }
    return web_serve("web_static", where, root, NULL);
}
