/* web_form — the book's form page (chapter 4): GET shows a form, POST
 * shows what was typed in it. The request's arguments (Twisted's
 * request.args) come decoded from the query string and from the form's
 * body; what goes back into the page is HTML-escaped (the book's
 * cgi.escape), so "<b>" is shown, not obeyed.
 *
 *   ./web_form [--port PORT]
 *   open http://127.0.0.1:8000/ in a browser, or:
 *   curl -d 'form-field=<b>hi</b>' http://127.0.0.1:8000/
 *                       <html><body>You submitted: &lt;b&gt;hi&lt;/b&gt;...
 */
#include "web_common.h"

static int form_get(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    coil_http_request_set_header(req, "Content-Type", "text/html");
    coil_http_request_writef(req, "<html><body>\n"
                                  "<form method=\"POST\" action=\"/\">\n"
                                  "<input name=\"form-field\" type=\"text\" />\n"
                                  "<input type=\"submit\" />\n"
                                  "</form>\n"
                                  "</body></html>\n");
    return COIL_HTTP_DONE;
}

/* request.args["form-field"][0], escaped on the way out. The body was
 * collected and parsed before this runs. */
static int form_post(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    const char *text = coil_http_request_arg(req, "form-field");
    if (!text) /* an error page: 400 with an escaped message, finished */
        return coil_http_request_error(req, 400, "the form has no field 'form-field'");
    coil_http_request_set_header(req, "Content-Type", "text/html");
    coil_http_request_writef(req, "<html><body>You submitted: ");
    coil_http_request_write_escaped(req, text);
    coil_http_request_writef(req, "</body></html>\n");
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops form_ops = {
    .render_get = form_get,
    .render_post = form_post,
};

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT]\n", argv[0]);
        return 2;
    }
    coil_http_resource *form = coil_http_resource_new(&form_ops, NULL);
    if (!form)
        return 1;
    coil_http_resource_set_leaf(form, 1); /* isLeaf = True */
    return web_serve("web_form", where, form, NULL);
}
