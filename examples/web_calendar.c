/* web_calendar — the book's calendar (chapter 4): dynamic children. The
 * root resource makes a child for each URL on demand (Twisted's getChild):
 * /2026 is a page with the calendar of 2026, laid out as Python's
 * calendar.calendar(2026) does it; anything but digits is 404. It also
 * shows the book's redirect: /now sends the browser to the current year.
 *
 *   ./web_calendar [--port PORT]
 *   curl http://127.0.0.1:8000/          <h1>Welcome</h1> ...
 *   curl http://127.0.0.1:8000/2026      the year 2026, three months a row
 *   curl -L http://127.0.0.1:8000/now    302 to /2026 (this year), followed
 *   curl -i http://127.0.0.1:8000/abc    404 Not Found
 */
#include <string.h>
#include <time.h>

#include "web_common.h"

/* ---- a year's calendar, as Python's calendar.calendar(year) ---------- */

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int y, int m) /* m: 1..12 */
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Day of the week of y-m-d, Monday = 0 (the Gregorian calendar extended
 * backwards, as Python's). */
static int weekday(int y, int m, int d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y--;
    int sunday0 = (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
    return (sunday0 + 6) % 7;
}

/* Append `s` centred in `width` columns, as Python's str.center (every
 * width here is even, so the extra space of an odd margin goes right). */
static void center(char *line, const char *s, int width)
{
    int margin = width - (int)strlen(s);
    int left = margin > 0 ? margin / 2 : 0;
    int right = margin > 0 ? margin - left : 0;
    sprintf(line + strlen(line), "%*s%s%*s", left, "", s, right, "");
}

/* Write one line without its trailing spaces (Python's rstrip), then
 * start the next one empty. */
static void put_line(coil_http_request *req, char *line)
{
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    coil_http_request_writef(req, "%s\n", line);
    line[0] = '\0';
}

/* Twelve months in four rows of three, each month 20 columns wide (seven
 * days of "%2d" and a space), six spaces between months. */
static void write_year(coil_http_request *req, int year)
{
    static const char *const names[] = {"January",   "February", "March",    "April",
                                        "May",       "June",     "July",     "August",
                                        "September", "October",  "November", "December"};
    char line[256] = "", text[32];
    snprintf(text, sizeof text, "%d", year);
    center(line, text, 3 * 20 + 2 * 6);
    put_line(req, line);
    for (int first = 1; first <= 12; first += 3) {
        coil_http_request_writef(req, "\n");
        for (int m = first; m < first + 3; m++) {
            center(line, names[m - 1], 20);
            strcat(line, m < first + 2 ? "      " : "");
        }
        put_line(req, line);
        for (int m = first; m < first + 3; m++)
            strcat(line,
                   m < first + 2 ? "Mo Tu We Th Fr Sa Su      " : "Mo Tu We Th Fr Sa Su");
        put_line(req, line);
        /* Week by week: a week of one month holds the days from
         * 7 * week - offset + 1 on, offset being its first day's weekday. */
        for (int week = 0; week < 6; week++) {
            int any = 0;
            for (int m = first; m < first + 3; m++) {
                int offset = weekday(year, m, 1), n = days_in(year, m);
                int start = 7 * week - offset + 1;
                if (start <= n)
                    any = 1;
                for (int i = 0; i < 7; i++) {
                    int day = start + i;
                    if (start <= n && day >= 1 && day <= n)
                        sprintf(line + strlen(line), "%2d", day);
                    else
                        strcat(line, "  ");
                    strcat(line, i < 6 ? " " : "");
                }
                strcat(line, m < first + 2 ? "      " : "");
            }
            if (!any) /* no month of this row has that many weeks */
                break;
            put_line(req, line);
        }
        line[0] = '\0';
    }
}

/* ---- the resources ----------------------------------------------------- */

/* YearPage: a leaf that knows its year (freed by its destroy). */
typedef struct year_page {
    int year;
} year_page;

static int year_get(coil_http_resource *res, coil_http_request *req)
{
    year_page *y = coil_http_resource_user(res);
    coil_http_request_set_header(req, "Content-Type", "text/html");
    coil_http_request_writef(req, "<html><body><pre>");
    write_year(req, y->year);
    coil_http_request_writef(req, "</pre></body></html>");
    return COIL_HTTP_DONE;
}

static void year_destroy(coil_http_resource *res)
{
    free(coil_http_resource_user(res));
}

static const coil_http_resource_ops year_ops = {
    .render_get = year_get,
    .destroy = year_destroy,
};

/* /now: the book's redirectTo(datetime.now().year, request). */
static int now_get(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char url[32];
    snprintf(url, sizeof url, "/%d", tm.tm_year + 1900);
    return coil_http_request_redirect(req, url, 302);
}

static const coil_http_resource_ops now_ops = {.render_get = now_get};

/* CalendarHome.getChild: "" is the home page itself, digits a YearPage,
 * "now" the redirect, anything else NoResource (404). Each call returns a
 * new reference; the server drops it when the request is over. */
static coil_http_resource *home_get_child(coil_http_resource *res, const char *name,
                                          coil_http_request *req)
{
    (void)req;
    if (name[0] == '\0')
        return coil_http_resource_ref(res);
    if (strcmp(name, "now") == 0)
        return coil_http_resource_new(&now_ops, NULL);
    size_t n = strlen(name);
    if (n > 4 || strspn(name, "0123456789") != n || atoi(name) < 1)
        return coil_http_no_resource_new(); /* years 1 to 9999, as Python */
    year_page *y = malloc(sizeof *y);
    if (!y)
        return NULL;
    y->year = atoi(name);
    coil_http_resource *page = coil_http_resource_new(&year_ops, y);
    if (!page) {
        free(y);
        return NULL;
    }
    coil_http_resource_set_leaf(page, 1);
    return page;
}

static int home_get(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    coil_http_request_set_header(req, "Content-Type", "text/html");
    coil_http_request_writef(req, "<h1>Welcome</h1><a href=\"/now\">This year</a>");
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops home_ops = {
    .render_get = home_get,
    .get_child = home_get_child,
};

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT]\n", argv[0]);
        return 2;
    }
    /* Not a leaf: the tree walk asks it for its children. */
    coil_http_resource *home = coil_http_resource_new(&home_ops, NULL);
    if (!home)
        return 1;
    return web_serve("web_calendar", where, home, NULL);
}
