/* coil — HTTP/1.1 message parsing (internal): request and response heads,
 * the chunked body decoder, and the field checks the public API shares.
 *
 * Strict per RFC 9110 / 9112, incremental and zero-copy: the caller keeps
 * the bytes of the head so far in one buffer (from the head's first byte)
 * and calls the parser again after each read with the whole buffer; the
 * parser remembers how far it looked (no rescanning), and on success fills
 * views (pointer + length) into that buffer. Results never depend on how
 * the input was split.
 *
 * Used by protocols/http/server.c (requests), client.c (responses), the
 * fuzz targets and test_http_parser.
 */
#ifndef COIL_HTTP_PARSE_H
#define COIL_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define COIL__HTTP_DEFAULT_MAX_LINE   (8 * 1024)
#define COIL__HTTP_DEFAULT_MAX_HEAD   (64 * 1024)
#define COIL__HTTP_DEFAULT_MAX_FIELDS 100
#define COIL__HTTP_MAX_CHUNK_LINE     4096 /* a chunk-size line with extensions */

typedef struct coil__http_limits {
    size_t max_line;   /* the request line / status line, CRLF included;
                          0: COIL__HTTP_DEFAULT_MAX_LINE */
    size_t max_head;   /* the whole head (line, fields, blank line);
                          0: COIL__HTTP_DEFAULT_MAX_HEAD */
    size_t max_fields; /* 0: COIL__HTTP_DEFAULT_MAX_FIELDS; never more than
                          the caller's `fields` array holds */
} coil__http_limits;

/* One field line: views into the caller's buffer; the value has its
 * leading and trailing whitespace removed. */
typedef struct coil__http_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} coil__http_field;

enum coil__http_body {
    COIL__HTTP_BODY_NONE = 0, /* no body (requests without CL/TE; HEAD, 1xx,
                                 204, 304 responses) */
    COIL__HTTP_BODY_LENGTH,   /* content_length bytes (may be 0) */
    COIL__HTTP_BODY_CHUNKED,  /* chunked: feed coil__http_chunked */
    COIL__HTTP_BODY_CLOSE     /* responses only: until the connection ends */
};

typedef struct coil__http_head {
    /* requests */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *host; /* the Host field's value (NULL if none) */
    size_t host_len;
    /* responses */
    int status;
    const char *reason;
    size_t reason_len;
    /* both */
    int version;              /* 10 or 11 */
    coil__http_field *fields; /* the caller's array (set before parsing) */
    size_t fields_cap;        /* its size (set before parsing) */
    size_t nfields;
    /* framing and connection handling, from the fields */
    enum coil__http_body body;
    uint64_t content_length;
    int keep_alive;      /* 1.1 without "Connection: close"; 1.0 with
                            "Connection: keep-alive" */
    int expect_continue; /* requests: "Expect: 100-continue" (1.1 only) */
    size_t head_len;     /* bytes of the head, blank line included */
} coil__http_head;

/* Where an incremental parse got to; zero it (= {0}) for each new head. */
typedef struct coil__http_parser {
    size_t scanned; /* bytes already searched for the end of the head */
    size_t skipped; /* leading empty lines skipped (requests) */
} coil__http_parser;

/* Parse a request head from buf[0..len).
 * Returns:
 *   > 0   the head is complete: its length; *out filled (views into buf)
 *   0     more bytes are needed (no limit passed yet)
 *   < 0   -STATUS for the answer: -400 malformed or smuggling, -414 request
 *         line too long, -431 head too big or too many fields, -501
 *         unknown transfer coding, -505 version not 1.0 / 1.1; *why is a
 *         static reason for people ("whitespace before colon in a header
 *         field", "Content-Length and Transfer-Encoding together").
 * Rules (each has a row in tests/test_http_parser.c's smuggling table):
 *  - request-line = method SP request-target SP HTTP/1.x CRLF; method a
 *    token; target origin-form ("/..."), absolute-form ("http://h/p"),
 *    authority-form (CONNECT only) or "*" (OPTIONS only); no control
 *    bytes, no spaces; up to 2 empty lines before it are ignored.
 *  - lines end in CRLF or a bare LF (RFC 9112 2.2); a bare CR anywhere is
 *    400; NUL and other control bytes (but tab in values) are 400.
 *  - field-name a token; whitespace before the colon is 400; obs-fold (a
 *    line starting with SP/HT) is 400.
 *  - Content-Length: digits only (a list of equal values is one value;
 *    differing values 400), at most 2^62; with Transfer-Encoding: 400.
 *  - Transfer-Encoding in HTTP/1.0: 400; chunked not the last coding, or
 *    given twice: 400; any other coding: 501.
 *  - HTTP/1.1 without exactly one Host: 400.
 *  - HTTP/1.0 and HTTP/1.1; a higher 1.x is read as 1.1 (RFC 9112 2.3);
 *    another major version or HTTP/0.9: 505 ("HTTP/2.0"); garbage: 400. */
int coil__http_parse_request(coil__http_parser *st, const char *buf, size_t len,
                             const coil__http_limits *lim, coil__http_head *out,
                             const char **why);

/* Parse a response head the same way (status-line = HTTP/1.x SP 3DIGIT SP
 * reason CRLF). `head_request` = the request was HEAD (no body whatever
 * the fields say). Framing: 1xx, 204, 304 and HEAD: none; chunked;
 * Content-Length; else until close. Returns > 0, 0, or -1 with *why. */
int coil__http_parse_response(coil__http_parser *st, const char *buf, size_t len,
                              const coil__http_limits *lim, int head_request,
                              coil__http_head *out, const char **why);

/* The first field called `name` (case-insensitive), or NULL. */
const coil__http_field *coil__http_head_field(const coil__http_head *h, const char *name);

/* -- chunked bodies --------------------------------------------------------
 * chunk = size [ext] CRLF data CRLF; last-chunk = "0" [ext] CRLF; then
 * trailer fields and CRLF. Size hex, at most 16 digits and below 2^62, no
 * sign or space before it; extensions (";name[=value]", value token or
 * quoted-string) are checked and ignored; the size line is bounded
 * (COIL__HTTP_MAX_CHUNK_LINE); trailers are checked like fields, bounded
 * by max_trailer, and dropped. */
typedef struct coil__http_chunked {
    int state;               /* internal */
    uint64_t remaining;      /* data bytes left in the current chunk */
    size_t line;             /* bytes of the current size/trailer line so far */
    uint64_t chunks;         /* chunks seen */
    size_t trailer;          /* trailer bytes so far */
    uint64_t max_chunks;     /* 0: no limit */
    size_t max_trailer;      /* 0: COIL__HTTP_DEFAULT_MAX_HEAD */
    unsigned char hexdigits; /* internal */
} coil__http_chunked;

enum {
    COIL__CHUNK_ERROR = -1,    /* malformed: *why says how */
    COIL__CHUNK_TOO_MANY = -2, /* more than max_chunks */
    COIL__CHUNK_MORE = 0,      /* everything consumed; feed more */
    COIL__CHUNK_DATA = 1,      /* *data, *data_len: body bytes (a view into
                                  `in`); call again with the rest */
    COIL__CHUNK_END = 2        /* the body and its trailers are over;
                                  *consumed says where the next message
                                  starts */
};
/* Feed in[0..len). *consumed = bytes of `in` used by this call (always set).
 * At most one piece of data per call (zero-copy). */
int coil__http_chunked_feed(coil__http_chunked *c, const char *in, size_t len,
                            size_t *consumed, const char **data, size_t *data_len,
                            const char **why);

/* -- checks shared with the public API ------------------------------------ */
int coil__http_is_token(const char *s, size_t len);       /* RFC 9110 token */
int coil__http_is_field_value(const char *s, size_t len); /* no CR/LF/NUL/CTL
                                                             but HT */
/* Case-insensitive compare of a view with a C string. */
int coil__http_eq(const char *s, size_t len, const char *lit);

#endif
