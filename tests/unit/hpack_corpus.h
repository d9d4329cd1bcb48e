/* hpack_corpus.h — realistic HTTP/2 header lists (browser requests, server
 * responses) shared by the HPACK tests, the fuzz seeds and the benchmark. */
#ifndef HPACK_CORPUS_H
#define HPACK_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sluice.h"

/* Modelled on what Chrome 122 and Firefox 123 send while loading a page and
 * its subresources, and what a CDN-fronted origin answers. Requests and
 * responses are separate lists because each direction of a connection has
 * its own HPACK context: replay hc_requests on one encoder/decoder pair and
 * hc_responses on another, in order. flags are SLUICE_NV_* (a sender marks
 * secrets never-indexed on its own; the few flagged here are what an
 * application would flag explicitly). */

typedef struct hc_field {
    const char *name;
    const char *value;
    uint32_t flags;
} hc_field;

typedef struct hc_list {
    const hc_field *f;
    size_t n;
} hc_list;

#define HC_F(n, v) { (n), (v), 0 }
#define HC_SECRET(n, v) { (n), (v), SLUICE_NV_NEVER_INDEX }
#define HC_LIST(a) { (a), sizeof(a) / sizeof((a)[0]) }

/* ---- site 1: a news site, Chrome on Linux ----------------------------- */

#define HC_CHROME_UA                                                           \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " \
    "Chrome/122.0.0.0 Safari/537.36"
#define HC_CHROME_CH_UA                                                        \
    "\"Chromium\";v=\"122\", \"Not(A:Brand\";v=\"24\", \"Google Chrome\";v=\"122\""
#define HC_NEWS_COOKIE                                                         \
    "_ga=GA1.1.1460735617.1709212345; "                                        \
    "_ga_Q8XK3T2M1C=GS1.1.1710412345.7.1.1710412399.0.0.0; "                   \
    "euconsent-v2=CP7mXQAP7mXQAAKA1AENAoEsAP_gAEPgAAqIg1NX_H__bW9r8X7_aft0eY1P9_j77uQzDhfNk-8F3L_W_LwX52E7NF36tq4KmR4ku1LBIUNlHMHUDUmwaokVryHsak2cpzNKJ7BEknMZOydYGF9vmxtj-QKY7_5_d3bx2D-t_9v-39z3z81Xn3d93-_03LCdV58tDfn9fR_bc9KPt_58v8v8_____3_e__3_7997BAAAAAA; " \
    "session=eyJ1aWQiOjQ4MTkyMywidGllciI6ImZyZWUifQ.ZfK2mA.x9Qm7hN2pL4vR8tY1wZ3bC6dE; " \
    "theme=dark"

static const hc_field hc_req_news_doc[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("upgrade-insecure-requests", "1"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                   "image/avif,image/webp,image/apng,*/*;q=0.8,"
                   "application/signed-exchange;v=b3;q=0.7"),
    HC_F("sec-fetch-site", "none"),
    HC_F("sec-fetch-mode", "navigate"),
    HC_F("sec-fetch-user", "?1"),
    HC_F("sec-fetch-dest", "document"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=0, i"),
};

static const hc_field hc_req_news_css[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/static/css/main.3f2a9c71.css"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "text/css,*/*;q=0.1"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "style"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=0"),
};

static const hc_field hc_req_news_js_vendor[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/static/js/vendor.8d1e2f04.js"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "*/*"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "script"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=1"),
};

static const hc_field hc_req_news_js_app[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/static/js/app.41bc07e9.js"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "*/*"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "script"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=1"),
};

static const hc_field hc_req_news_font[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/static/fonts/inter-var-latin.2b7d1f.woff2"),
    HC_F("origin", "https://www.example-news.com"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "*/*"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-dest", "font"),
    HC_F("referer", "https://www.example-news.com/static/css/main.3f2a9c71.css"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=0"),
};

static const hc_field hc_req_news_img1[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "img.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/2024/03/14/lead-markets-rally.jpg?w=1200&q=80&fm=webp&fit=crop"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "image"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("priority", "u=1, i"),
};

static const hc_field hc_req_news_img2[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "img.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/2024/03/14/thumb-central-bank.jpg?w=400&q=75&fm=webp"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "image"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("priority", "i"),
};

static const hc_field hc_req_news_api[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/api/v2/articles?section=world&page=1&limit=20&fields=id,title,teaser,image"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("accept", "application/json, text/plain, */*"),
    HC_F("x-requested-with", "XMLHttpRequest"),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("x-client-version", "web/4.18.2"),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=1, i"),
};

static const hc_field hc_req_news_beacon[] = {
    HC_F(":method", "POST"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/g/collect?v=2&tid=G-Q8XK3T2M1C&gtm=45je43d0&_p=1710412399123"
                  "&cid=1460735617.1709212345&ul=en-gb&sr=1920x1080&_s=3"
                  "&dl=https%3A%2F%2Fwww.example-news.com%2F&dt=Example%20News"
                  "&en=page_view&_ee=1&tfd=1843"),
    HC_F("content-length", "0"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "*/*"),
    HC_F("origin", "https://www.example-news.com"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=4, i"),
};

static const hc_field hc_req_news_favicon[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/favicon.ico"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-dest", "image"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=1, i"),
};

static const hc_field hc_req_news_article[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/business/2024/03/14/markets-rally-on-rate-cut-hopes?ref=home&pos=1"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("upgrade-insecure-requests", "1"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                   "image/avif,image/webp,image/apng,*/*;q=0.8,"
                   "application/signed-exchange;v=b3;q=0.7"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "navigate"),
    HC_F("sec-fetch-user", "?1"),
    HC_F("sec-fetch-dest", "document"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=0, i"),
};

static const hc_field hc_req_news_comments[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "www.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/api/v2/comments?article=88231&sort=top&cursor=eyJvIjo0MH0"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("accept", "application/json, text/plain, */*"),
    HC_F("x-requested-with", "XMLHttpRequest"),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("x-client-version", "web/4.18.2"),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("referer", "https://www.example-news.com/business/2024/03/14/markets-rally-on-rate-cut-hopes?ref=home&pos=1"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("cookie", HC_NEWS_COOKIE),
    HC_F("priority", "u=1, i"),
};

/* A logged-in API call: the bearer token is a secret. */
static const hc_field hc_req_news_account[] = {
    HC_F(":method", "GET"),
    HC_F(":authority", "api.example-news.com"),
    HC_F(":scheme", "https"),
    HC_F(":path", "/v1/me/subscriptions"),
    HC_F("sec-ch-ua", HC_CHROME_CH_UA),
    HC_F("accept", "application/json"),
    HC_F("authorization", "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
                          "eyJzdWIiOiI0ODE5MjMiLCJleHAiOjE3MTA0MTYwMDB9."
                          "Tq3x9VbN2mR7kL0pW4sY8aD1fH6jC5eG"),
    HC_F("sec-ch-ua-mobile", "?0"),
    HC_F("user-agent", HC_CHROME_UA),
    HC_F("sec-ch-ua-platform", "\"Linux\""),
    HC_F("origin", "https://www.example-news.com"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("referer", "https://www.example-news.com/"),
    HC_F("accept-encoding", "gzip, deflate, br, zstd"),
    HC_F("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"),
    HC_F("priority", "u=1, i"),
};

/* ---- site 2: a shop, Firefox on Windows -------------------------------- */

#define HC_FF_UA                                                               \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 "     \
    "Firefox/123.0"

/* Firefox sends the cookie as one field; our proxy-side tests also split
 * it into crumbs (RFC 9113 §8.2.3) the way Chrome does. */
static const hc_field hc_req_shop_doc[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/"),
    HC_F(":authority", "shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                   "image/avif,image/webp,*/*;q=0.8"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("upgrade-insecure-requests", "1"),
    HC_F("sec-fetch-dest", "document"),
    HC_F("sec-fetch-mode", "navigate"),
    HC_F("sec-fetch-site", "none"),
    HC_F("sec-fetch-user", "?1"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_css[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/assets/app-2b9c41d8.css"),
    HC_F(":authority", "shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "text/css,*/*;q=0.1"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("sec-fetch-dest", "style"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_js[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/assets/app-7a1d93fe.js"),
    HC_F(":authority", "shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "*/*"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("sec-fetch-dest", "script"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_product[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/products/trail-runner-gtx?color=blue&size=42&utm_source=newsletter&utm_medium=email&utm_campaign=spring24"),
    HC_F(":authority", "shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                   "image/avif,image/webp,*/*;q=0.8"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("upgrade-insecure-requests", "1"),
    HC_F("sec-fetch-dest", "document"),
    HC_F("sec-fetch-mode", "navigate"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-user", "?1"),
    HC_F("priority", "u=0, i"),
    HC_F("cookie", "cart=c_9f8e7d6c5b4a; cc_consent=necessary%2Cstats; "
                   "sid=Fe26.2**b3c4d5e6f7a8091a2b3c4d5e6f708192*aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBzZWNyZXQ*1710412399000; "
                   "currency=EUR"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_img[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/img/p/12345/trail-runner-gtx-blue-1.jpg?v=3&w=800"),
    HC_F(":authority", "cdn.shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "image/avif,image/webp,*/*"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("sec-fetch-dest", "image"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("te", "trailers"),
};

/* A CORS preflight, then the request it allows. */
static const hc_field hc_req_shop_preflight[] = {
    HC_F(":method", "OPTIONS"),
    HC_F(":path", "/api/cart/items"),
    HC_F(":authority", "api.shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "*/*"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("access-control-request-method", "POST"),
    HC_F("access-control-request-headers", "content-type,x-csrf-token"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("origin", "https://shop.example.org"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("priority", "u=4"),
    HC_F("te", "trailers"),
};

/* Cookie split into crumbs; the short ones are sent never-indexed. */
static const hc_field hc_req_shop_cart_add[] = {
    HC_F(":method", "POST"),
    HC_F(":path", "/api/cart/items"),
    HC_F(":authority", "api.shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "application/json"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("content-type", "application/json"),
    HC_SECRET("x-csrf-token", "8c1f0e2d-47b9-4a6e-9d3c-5b2a1f0e9d8c"),
    HC_F("content-length", "58"),
    HC_F("origin", "https://shop.example.org"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("cookie", "cart=c_9f8e7d6c5b4a"),
    HC_F("cookie", "cc_consent=necessary%2Cstats"),
    HC_F("cookie", "sid=Fe26.2**b3c4d5e6f7a8091a2b3c4d5e6f708192*aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBzZWNyZXQ*1710412399000"),
    HC_F("cookie", "currency=EUR"),
    HC_F("priority", "u=1"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_cart[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/cart"),
    HC_F(":authority", "shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                   "image/avif,image/webp,*/*;q=0.8"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/products/trail-runner-gtx?color=blue&size=42&utm_source=newsletter&utm_medium=email&utm_campaign=spring24"),
    HC_F("upgrade-insecure-requests", "1"),
    HC_F("sec-fetch-dest", "document"),
    HC_F("sec-fetch-mode", "navigate"),
    HC_F("sec-fetch-site", "same-origin"),
    HC_F("sec-fetch-user", "?1"),
    HC_F("priority", "u=0, i"),
    HC_F("cookie", "cart=c_9f8e7d6c5b4a"),
    HC_F("cookie", "cc_consent=necessary%2Cstats"),
    HC_F("cookie", "sid=Fe26.2**b3c4d5e6f7a8091a2b3c4d5e6f708192*aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBzZWNyZXQ*1710412399000"),
    HC_F("cookie", "currency=EUR"),
    HC_F("te", "trailers"),
};

/* Revalidation of a cached image. */
static const hc_field hc_req_shop_revalidate[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/img/p/12345/trail-runner-gtx-blue-1.jpg?v=3&w=800"),
    HC_F(":authority", "cdn.shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "image/avif,image/webp,*/*"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/cart"),
    HC_F("if-modified-since", "Tue, 12 Mar 2024 08:15:02 GMT"),
    HC_F("if-none-match", "\"5f2b-61378a6e0c180\""),
    HC_F("sec-fetch-dest", "image"),
    HC_F("sec-fetch-mode", "no-cors"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("te", "trailers"),
};

static const hc_field hc_req_shop_search[] = {
    HC_F(":method", "GET"),
    HC_F(":path", "/api/search/suggest?q=trail%20runn&locale=de-DE&limit=8"),
    HC_F(":authority", "api.shop.example.org"),
    HC_F(":scheme", "https"),
    HC_F("user-agent", HC_FF_UA),
    HC_F("accept", "application/json"),
    HC_F("accept-language", "de,en-US;q=0.7,en;q=0.3"),
    HC_F("accept-encoding", "gzip, deflate, br"),
    HC_F("referer", "https://shop.example.org/"),
    HC_F("origin", "https://shop.example.org"),
    HC_F("sec-fetch-dest", "empty"),
    HC_F("sec-fetch-mode", "cors"),
    HC_F("sec-fetch-site", "same-site"),
    HC_F("priority", "u=4"),
    HC_F("te", "trailers"),
};

/* curl through the proxy, with HTTP basic auth (always never-indexed). */
static const hc_field hc_req_curl_admin[] = {
    HC_F(":method", "GET"),
    HC_F(":scheme", "https"),
    HC_F(":authority", "admin.shop.example.org"),
    HC_F(":path", "/metrics?format=prometheus"),
    HC_F("user-agent", "curl/8.6.0"),
    HC_F("accept", "*/*"),
    HC_F("authorization", "Basic YWRtaW46czNjcjN0LXBhc3N3MHJk"),
    HC_F("x-forwarded-for", "203.0.113.54"),
};

static const hc_list hc_requests[] = {
    HC_LIST(hc_req_news_doc),       HC_LIST(hc_req_news_css),
    HC_LIST(hc_req_news_js_vendor), HC_LIST(hc_req_news_js_app),
    HC_LIST(hc_req_news_font),      HC_LIST(hc_req_news_img1),
    HC_LIST(hc_req_news_img2),      HC_LIST(hc_req_news_api),
    HC_LIST(hc_req_news_beacon),    HC_LIST(hc_req_news_favicon),
    HC_LIST(hc_req_news_article),   HC_LIST(hc_req_news_comments),
    HC_LIST(hc_req_news_account),   HC_LIST(hc_req_shop_doc),
    HC_LIST(hc_req_shop_css),       HC_LIST(hc_req_shop_js),
    HC_LIST(hc_req_shop_product),   HC_LIST(hc_req_shop_img),
    HC_LIST(hc_req_shop_preflight), HC_LIST(hc_req_shop_cart_add),
    HC_LIST(hc_req_shop_cart),      HC_LIST(hc_req_shop_revalidate),
    HC_LIST(hc_req_shop_search),    HC_LIST(hc_req_curl_admin),
};
#define HC_NREQUESTS (sizeof(hc_requests) / sizeof(hc_requests[0]))

/* ---- responses, in the order of the requests above ----------------------- */

static const hc_field hc_res_news_doc[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:19 GMT"),
    HC_F("content-type", "text/html; charset=utf-8"),
    HC_F("content-length", "48213"),
    HC_F("cache-control", "private, max-age=0, must-revalidate"),
    HC_F("content-encoding", "br"),
    HC_F("vary", "Accept-Encoding, Cookie"),
    HC_F("server", "nginx"),
    HC_F("set-cookie", "session=eyJ1aWQiOjQ4MTkyMywidGllciI6ImZyZWUifQ.ZfK2mA.x9Qm7hN2pL4vR8tY1wZ3bC6dE; "
                       "Path=/; Expires=Fri, 14 Mar 2025 10:33:19 GMT; Secure; HttpOnly; SameSite=Lax"),
    HC_F("set-cookie", "ab_home=variant_b; Path=/; Max-Age=2592000; Secure; SameSite=Lax"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("content-security-policy", "default-src 'self'; img-src 'self' https://img.example-news.com data:; "
                                    "script-src 'self' 'nonce-r4nd0mN0nc3'; style-src 'self' 'unsafe-inline'; "
                                    "frame-ancestors 'none'"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("x-frame-options", "DENY"),
    HC_F("referrer-policy", "strict-origin-when-cross-origin"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("x-request-id", "01HRWZ8Q6K2T4V7XA9C3M5N1PB"),
    HC_F("server-timing", "cdn-cache;desc=MISS, edge;dur=12, origin;dur=87"),
};

static const hc_field hc_res_news_css[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:19 GMT"),
    HC_F("content-type", "text/css; charset=utf-8"),
    HC_F("content-length", "31877"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("content-encoding", "br"),
    HC_F("etag", "\"3f2a9c71-7c85\""),
    HC_F("last-modified", "Mon, 11 Mar 2024 16:02:44 GMT"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("age", "5127"),
    HC_F("x-cache", "HIT"),
    HC_F("accept-ranges", "bytes"),
};

static const hc_field hc_res_news_js_vendor[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:19 GMT"),
    HC_F("content-type", "application/javascript; charset=utf-8"),
    HC_F("content-length", "142310"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("content-encoding", "br"),
    HC_F("etag", "\"8d1e2f04-22be6\""),
    HC_F("last-modified", "Mon, 11 Mar 2024 16:02:44 GMT"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("age", "5127"),
    HC_F("x-cache", "HIT"),
    HC_F("accept-ranges", "bytes"),
};

static const hc_field hc_res_news_js_app[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:19 GMT"),
    HC_F("content-type", "application/javascript; charset=utf-8"),
    HC_F("content-length", "88417"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("content-encoding", "br"),
    HC_F("etag", "\"41bc07e9-15961\""),
    HC_F("last-modified", "Wed, 13 Mar 2024 09:41:05 GMT"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("age", "88"),
    HC_F("x-cache", "HIT"),
    HC_F("accept-ranges", "bytes"),
};

static const hc_field hc_res_news_font[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("content-type", "font/woff2"),
    HC_F("content-length", "70348"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("access-control-allow-origin", "*"),
    HC_F("etag", "\"2b7d1f-112cc\""),
    HC_F("last-modified", "Fri, 02 Feb 2024 12:00:00 GMT"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("age", "402117"),
    HC_F("x-cache", "HIT"),
    HC_F("accept-ranges", "bytes"),
};

static const hc_field hc_res_news_img1[] = {
    HC_F(":status", "200"),
    HC_F("content-type", "image/webp"),
    HC_F("content-length", "118842"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("cache-control", "public, max-age=2592000"),
    HC_F("etag", "\"a1f3c9e27b\""),
    HC_F("last-modified", "Thu, 14 Mar 2024 06:12:51 GMT"),
    HC_F("vary", "Accept"),
    HC_F("server", "imgproxy"),
    HC_F("timing-allow-origin", "*"),
    HC_F("access-control-allow-origin", "*"),
    HC_F("x-cache", "MISS, HIT"),
    HC_F("x-served-by", "cache-fra-etou8220094-FRA, cache-lhr7352-LHR"),
    HC_F("age", "1412"),
};

static const hc_field hc_res_news_img2[] = {
    HC_F(":status", "200"),
    HC_F("content-type", "image/webp"),
    HC_F("content-length", "21907"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("cache-control", "public, max-age=2592000"),
    HC_F("etag", "\"c07d5a1b3e\""),
    HC_F("last-modified", "Thu, 14 Mar 2024 07:40:09 GMT"),
    HC_F("vary", "Accept"),
    HC_F("server", "imgproxy"),
    HC_F("timing-allow-origin", "*"),
    HC_F("access-control-allow-origin", "*"),
    HC_F("x-cache", "HIT, HIT"),
    HC_F("x-served-by", "cache-fra-etou8220094-FRA, cache-lhr7352-LHR"),
    HC_F("age", "3310"),
};

static const hc_field hc_res_news_api[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("content-type", "application/json; charset=utf-8"),
    HC_F("content-length", "9144"),
    HC_F("cache-control", "private, no-cache"),
    HC_F("content-encoding", "gzip"),
    HC_F("vary", "Accept-Encoding, Cookie"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("x-ratelimit-limit", "600"),
    HC_F("x-ratelimit-remaining", "597"),
    HC_F("x-ratelimit-reset", "1710412440"),
    HC_F("x-request-id", "01HRWZ8RA0F9D2KXB7Q4W6M3TE"),
    HC_F("server-timing", "db;dur=14, app;dur=31"),
};

static const hc_field hc_res_news_beacon[] = {
    HC_F(":status", "204"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("cache-control", "no-cache, no-store, must-revalidate"),
    HC_F("pragma", "no-cache"),
    HC_F("expires", "Fri, 01 Jan 1990 00:00:00 GMT"),
    HC_F("access-control-allow-origin", "https://www.example-news.com"),
    HC_F("access-control-allow-credentials", "true"),
    HC_F("server", "Golfe2"),
    HC_F("alt-svc", "h3=\":443\"; ma=2592000,h3-29=\":443\"; ma=2592000"),
};

static const hc_field hc_res_news_favicon[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:20 GMT"),
    HC_F("content-type", "image/vnd.microsoft.icon"),
    HC_F("content-length", "15086"),
    HC_F("cache-control", "public, max-age=604800"),
    HC_F("etag", "\"65c0b1a4-3aee\""),
    HC_F("last-modified", "Mon, 05 Feb 2024 10:20:52 GMT"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("x-cache", "HIT"),
    HC_F("accept-ranges", "bytes"),
};

static const hc_field hc_res_news_article[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:41 GMT"),
    HC_F("content-type", "text/html; charset=utf-8"),
    HC_F("content-length", "61540"),
    HC_F("cache-control", "private, max-age=0, must-revalidate"),
    HC_F("content-encoding", "br"),
    HC_F("vary", "Accept-Encoding, Cookie"),
    HC_F("server", "nginx"),
    HC_F("link", "</static/css/main.3f2a9c71.css>; rel=preload; as=style, "
                 "</static/js/app.41bc07e9.js>; rel=preload; as=script"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("content-security-policy", "default-src 'self'; img-src 'self' https://img.example-news.com data:; "
                                    "script-src 'self' 'nonce-Zm9vYmFyYmF6'; style-src 'self' 'unsafe-inline'; "
                                    "frame-ancestors 'none'"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("x-frame-options", "DENY"),
    HC_F("referrer-policy", "strict-origin-when-cross-origin"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("x-request-id", "01HRWZ9C1J5N8R2T6W0Y3B7D4F"),
    HC_F("server-timing", "cdn-cache;desc=MISS, edge;dur=9, origin;dur=112"),
};

static const hc_field hc_res_news_comments[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:42 GMT"),
    HC_F("content-type", "application/json; charset=utf-8"),
    HC_F("content-length", "17790"),
    HC_F("cache-control", "private, no-cache"),
    HC_F("content-encoding", "gzip"),
    HC_F("vary", "Accept-Encoding, Cookie"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("x-ratelimit-limit", "600"),
    HC_F("x-ratelimit-remaining", "596"),
    HC_F("x-ratelimit-reset", "1710412440"),
    HC_F("x-request-id", "01HRWZ9CV3K7P1S5X9A2E6H0JM"),
    HC_F("server-timing", "db;dur=22, app;dur=40"),
};

static const hc_field hc_res_news_account[] = {
    HC_F(":status", "401"),
    HC_F("date", "Thu, 14 Mar 2024 10:33:42 GMT"),
    HC_F("content-type", "application/problem+json"),
    HC_F("content-length", "96"),
    HC_F("www-authenticate", "Bearer realm=\"api\", error=\"invalid_token\", "
                             "error_description=\"The access token expired\""),
    HC_F("access-control-allow-origin", "https://www.example-news.com"),
    HC_F("access-control-allow-credentials", "true"),
    HC_F("vary", "Origin"),
    HC_F("cache-control", "no-store"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-request-id", "01HRWZ9D0A4C8E2G6J0L4N8Q2S"),
};

static const hc_field hc_res_shop_doc[] = {
    HC_F(":status", "200"),
    HC_F("server", "cloudflare"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:02 GMT"),
    HC_F("content-type", "text/html; charset=UTF-8"),
    HC_F("cf-ray", "863d1a2b5c7e9f01-FRA"),
    HC_F("cf-cache-status", "DYNAMIC"),
    HC_F("cache-control", "no-cache, private"),
    HC_F("set-cookie", "sid=Fe26.2**b3c4d5e6f7a8091a2b3c4d5e6f708192*aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBzZWNyZXQ*1710412399000; "
                       "path=/; secure; httponly; samesite=lax"),
    HC_F("set-cookie", "currency=EUR; path=/; max-age=31536000; secure; samesite=lax"),
    HC_F("set-cookie", "__cf_bm=Jx8bq3Vn1k0mZ2r.7Wc5YhT4pLs9GdF6eA-1710412502-1.0.1.1-"
                       "QmV4dGhpc2lzbm90YXJlYWxjb29raWVidXRsb29rc2xpa2VvbmU; path=/; "
                       "expires=Thu, 14-Mar-24 11:05:02 GMT; domain=.shop.example.org; HttpOnly; Secure; SameSite=None"),
    HC_F("strict-transport-security", "max-age=31536000"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("content-encoding", "br"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
    HC_F("nel", "{\"success_fraction\":0,\"report_to\":\"cf-nel\",\"max_age\":604800}"),
    HC_F("report-to", "{\"endpoints\":[{\"url\":\"https:\\/\\/a.nel.cloudflare.com\\/report\\/v4?s=Xq1w2e3r4t5y6u7i8o9p\"}],"
                      "\"group\":\"cf-nel\",\"max_age\":604800}"),
};

static const hc_field hc_res_shop_css[] = {
    HC_F(":status", "200"),
    HC_F("server", "cloudflare"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:02 GMT"),
    HC_F("content-type", "text/css"),
    HC_F("cf-ray", "863d1a2c0e1f2a03-FRA"),
    HC_F("cf-cache-status", "HIT"),
    HC_F("age", "80122"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("etag", "W/\"2b9c41d8\""),
    HC_F("last-modified", "Tue, 12 Mar 2024 08:15:02 GMT"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("content-encoding", "br"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_js[] = {
    HC_F(":status", "200"),
    HC_F("server", "cloudflare"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:02 GMT"),
    HC_F("content-type", "application/javascript"),
    HC_F("cf-ray", "863d1a2c0e1f2a04-FRA"),
    HC_F("cf-cache-status", "HIT"),
    HC_F("age", "80121"),
    HC_F("cache-control", "public, max-age=31536000, immutable"),
    HC_F("etag", "W/\"7a1d93fe\""),
    HC_F("last-modified", "Tue, 12 Mar 2024 08:15:02 GMT"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("content-encoding", "br"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_product[] = {
    HC_F(":status", "200"),
    HC_F("server", "cloudflare"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:09 GMT"),
    HC_F("content-type", "text/html; charset=UTF-8"),
    HC_F("cf-ray", "863d1a58a1b2c3d4-FRA"),
    HC_F("cf-cache-status", "DYNAMIC"),
    HC_F("cache-control", "no-cache, private"),
    HC_F("link", "<https://cdn.shop.example.org/img/p/12345/trail-runner-gtx-blue-1.jpg?v=3&w=800>; rel=preload; as=image"),
    HC_F("strict-transport-security", "max-age=31536000"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("content-encoding", "br"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_img[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:09 GMT"),
    HC_F("content-type", "image/avif"),
    HC_F("content-length", "40231"),
    HC_F("server", "cloudflare"),
    HC_F("cf-ray", "863d1a59f0e1d2c3-FRA"),
    HC_F("cf-cache-status", "HIT"),
    HC_F("age", "2211"),
    HC_F("cache-control", "public, max-age=604800"),
    HC_F("etag", "\"5f2b-61378a6e0c180\""),
    HC_F("last-modified", "Tue, 12 Mar 2024 08:15:02 GMT"),
    HC_F("vary", "Accept"),
    HC_F("accept-ranges", "bytes"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_preflight[] = {
    HC_F(":status", "204"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:11 GMT"),
    HC_F("access-control-allow-origin", "https://shop.example.org"),
    HC_F("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS"),
    HC_F("access-control-allow-headers", "content-type,x-csrf-token"),
    HC_F("access-control-allow-credentials", "true"),
    HC_F("access-control-max-age", "7200"),
    HC_F("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    HC_F("server", "cloudflare"),
    HC_F("cf-ray", "863d1a66b7c8d9e0-FRA"),
};

static const hc_field hc_res_shop_cart_add[] = {
    HC_F(":status", "201"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:11 GMT"),
    HC_F("content-type", "application/json"),
    HC_F("content-length", "212"),
    HC_F("location", "/api/cart/items/7f3e2d1c"),
    HC_F("access-control-allow-origin", "https://shop.example.org"),
    HC_F("access-control-allow-credentials", "true"),
    HC_F("vary", "Origin"),
    HC_F("cache-control", "no-store"),
    HC_F("set-cookie", "cart=c_9f8e7d6c5b4a; path=/; max-age=1209600; secure; samesite=lax"),
    HC_F("server", "cloudflare"),
    HC_F("cf-ray", "863d1a67c9d0e1f2-FRA"),
};

static const hc_field hc_res_shop_cart[] = {
    HC_F(":status", "200"),
    HC_F("server", "cloudflare"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:14 GMT"),
    HC_F("content-type", "text/html; charset=UTF-8"),
    HC_F("cf-ray", "863d1a79e3f4a5b6-FRA"),
    HC_F("cf-cache-status", "DYNAMIC"),
    HC_F("cache-control", "no-cache, private"),
    HC_F("strict-transport-security", "max-age=31536000"),
    HC_F("vary", "Accept-Encoding"),
    HC_F("content-encoding", "br"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_revalidate[] = {
    HC_F(":status", "304"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:15 GMT"),
    HC_F("server", "cloudflare"),
    HC_F("cf-ray", "863d1a7f10a2b3c4-FRA"),
    HC_F("cf-cache-status", "HIT"),
    HC_F("age", "2217"),
    HC_F("cache-control", "public, max-age=604800"),
    HC_F("etag", "\"5f2b-61378a6e0c180\""),
    HC_F("last-modified", "Tue, 12 Mar 2024 08:15:02 GMT"),
    HC_F("vary", "Accept"),
    HC_F("alt-svc", "h3=\":443\"; ma=86400"),
};

static const hc_field hc_res_shop_search[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:35:17 GMT"),
    HC_F("content-type", "application/json"),
    HC_F("content-length", "688"),
    HC_F("access-control-allow-origin", "https://shop.example.org"),
    HC_F("access-control-allow-credentials", "true"),
    HC_F("vary", "Origin, Accept-Encoding"),
    HC_F("cache-control", "public, max-age=60, stale-while-revalidate=300"),
    HC_F("server", "cloudflare"),
    HC_F("cf-ray", "863d1a8c2d3e4f50-FRA"),
    HC_F("cf-cache-status", "MISS"),
};

static const hc_field hc_res_curl_admin[] = {
    HC_F(":status", "200"),
    HC_F("date", "Thu, 14 Mar 2024 10:36:00 GMT"),
    HC_F("content-type", "text/plain; version=0.0.4; charset=utf-8"),
    HC_F("content-length", "27514"),
    HC_F("server", "sluice/0.1.0"),
    HC_SECRET("x-internal-trace", "node=fra-2;pid=31337;conn=5512"),
};

/* A redirect and an error, as any site serves now and then. */
static const hc_field hc_res_redirect[] = {
    HC_F(":status", "301"),
    HC_F("date", "Thu, 14 Mar 2024 10:36:02 GMT"),
    HC_F("content-type", "text/html"),
    HC_F("content-length", "162"),
    HC_F("location", "https://www.example-news.com/business/2024/03/14/markets-rally-on-rate-cut-hopes"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
};

static const hc_field hc_res_not_found[] = {
    HC_F(":status", "404"),
    HC_F("date", "Thu, 14 Mar 2024 10:36:03 GMT"),
    HC_F("content-type", "text/html; charset=utf-8"),
    HC_F("content-length", "4310"),
    HC_F("cache-control", "no-cache"),
    HC_F("server", "nginx"),
    HC_F("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    HC_F("x-content-type-options", "nosniff"),
    HC_F("x-request-id", "01HRWZB4T8V2X6Z0C4E8G2J6L0"),
};

static const hc_list hc_responses[] = {
    HC_LIST(hc_res_news_doc),       HC_LIST(hc_res_news_css),
    HC_LIST(hc_res_news_js_vendor), HC_LIST(hc_res_news_js_app),
    HC_LIST(hc_res_news_font),      HC_LIST(hc_res_news_img1),
    HC_LIST(hc_res_news_img2),      HC_LIST(hc_res_news_api),
    HC_LIST(hc_res_news_beacon),    HC_LIST(hc_res_news_favicon),
    HC_LIST(hc_res_news_article),   HC_LIST(hc_res_news_comments),
    HC_LIST(hc_res_news_account),   HC_LIST(hc_res_shop_doc),
    HC_LIST(hc_res_shop_css),       HC_LIST(hc_res_shop_js),
    HC_LIST(hc_res_shop_product),   HC_LIST(hc_res_shop_img),
    HC_LIST(hc_res_shop_preflight), HC_LIST(hc_res_shop_cart_add),
    HC_LIST(hc_res_shop_cart),      HC_LIST(hc_res_shop_revalidate),
    HC_LIST(hc_res_shop_search),    HC_LIST(hc_res_curl_admin),
    HC_LIST(hc_res_redirect),       HC_LIST(hc_res_not_found),
};
#define HC_NRESPONSES (sizeof(hc_responses) / sizeof(hc_responses[0]))

/* The longest list in the corpus, for callers' fixed arrays. */
#define HC_MAX_FIELDS 32

/* Fill out[0..l->n) with l's fields as sluice_nv (pointing into l). */
static inline void hc_to_nv(const hc_list *l, sluice_nv *out)
{
    for (size_t i = 0; i < l->n; i++) {
        out[i].name = (const uint8_t *)l->f[i].name;
        out[i].value = (const uint8_t *)l->f[i].value;
        out[i].name_len = strlen(l->f[i].name);
        out[i].value_len = strlen(l->f[i].value);
        out[i].flags = l->f[i].flags;
    }
}

#endif /* HPACK_CORPUS_H */
