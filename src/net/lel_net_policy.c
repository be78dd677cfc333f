/* Where a guest may connect or send to. Always denied, unless the operator's allow_always
 * names them: link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10), the
 * host's loopback, the host's own addresses, unspecified and multicast addresses. Then the
 * sandbox's policy: allowOut, then denyOut, then `internet`. The host gateway address (when
 * the config turns it on) is the operator's own choice and goes to the host's loopback. */
#include "lel_net_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lel_cidr_parse(const char *s, struct lel_cidr *c)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, buf, c->addr) == 1)
        c->family = 4;
    else if (inet_pton(AF_INET6, buf, c->addr) == 1)
        c->family = 6;
    else
        return -EINVAL;
    int max = c->family == 4 ? 32 : 128;
    c->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > max)
            return -EINVAL;
        c->bits = (int)b;
    }
    return 0;
}

int lel__cidr_has(const struct lel_cidr *c, const struct lel_net_addr *a)
{
    const uint8_t *ab = a->addr;
    uint8_t mapped[16];
    int fam = a->family == AF_INET ? 4 : 6;
    if (fam == 6 && c->family == 4) { /* ::ffff:a.b.c.d is the IPv4 address */
        static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(ab, pre, 12))
            return 0;
        memcpy(mapped, ab + 12, 4);
        ab = mapped;
        fam = 4;
    }
    if (fam != c->family)
        return 0;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(ab, c->addr, (size_t)full))
        return 0;
    return !rest || ((ab[full] ^ c->addr[full]) & (0xff << (8 - rest))) == 0;
}

static int is_name(const char *s)
{
    struct lel_cidr c;
    return lel_cidr_parse(s, &c) < 0;
}

static int add_list(const char *const *in, size_t n, struct lel_cidr **cidrs, size_t *nc, char ***names, size_t *nn,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = in[i];
        size_t len = strlen(s);
        if (!len || len > 253) {
            snprintf(err, errlen, "'%.64s' is not an address, a CIDR or a host name", s);
            return -EINVAL;
        }
        if (is_name(s)) {
            for (size_t k = 0; k < len; k++)
                if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') ||
                      s[k] == '-' || s[k] == '.' || (s[k] == '*' && k == 0))) {
                    snprintf(err, errlen, "'%.64s' is not an address, a CIDR or a host name", s);
                    return -EINVAL;
                }
            char **nv = realloc(*names, (*nn + 1) * sizeof(char *));
            if (!nv)
                return -ENOMEM;
            *names = nv;
            if (!(nv[*nn] = strdup(s)))
                return -ENOMEM;
            (*nn)++;
            continue;
        }
        struct lel_cidr *cv = realloc(*cidrs, (*nc + 1) * sizeof(**cidrs));
        if (!cv)
            return -ENOMEM;
        *cidrs = cv;
        lel_cidr_parse(s, &cv[(*nc)++]);
    }
    return 0;
}

int lel_net_policy_build(struct lel_net_policy *p, int internet, const char *const *allow, size_t nallow,
                         const char *const *deny, size_t ndeny, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->internet = internet;
    int r = add_list(allow, nallow, &p->allow, &p->nallow, &p->allow_names, &p->nallow_names, err, errlen);
    if (r == 0)
        r = add_list(deny, ndeny, &p->deny, &p->ndeny, &p->deny_names, &p->ndeny_names, err, errlen);
    if (r < 0)
        lel_net_policy_free(p);
    return r;
}

void lel_net_policy_free(struct lel_net_policy *p)
{
    for (size_t i = 0; i < p->nallow_names; i++)
        free(p->allow_names[i]);
    for (size_t i = 0; i < p->ndeny_names; i++)
        free(p->deny_names[i]);
    free(p->allow_names);
    free(p->deny_names);
    free(p->allow);
    free(p->deny);
    memset(p, 0, sizeof(*p));
}

static int dup_names(char ***dst, char *const *src, size_t n)
{
    if (!n)
        return 0;
    if (!(*dst = calloc(n, sizeof(char *))))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!((*dst)[i] = strdup(src[i])))
            return -ENOMEM;
    return 0;
}

int lel__policy_copy(struct lel_net_policy *d, const struct lel_net_policy *s)
{
    memset(d, 0, sizeof(*d));
    d->internet = s->internet;
    d->nallow = s->nallow;
    d->ndeny = s->ndeny;
    if ((s->nallow && !(d->allow = malloc(s->nallow * sizeof(*d->allow)))) ||
        (s->ndeny && !(d->deny = malloc(s->ndeny * sizeof(*d->deny)))))
        goto fail;
    if (s->nallow)
        memcpy(d->allow, s->allow, s->nallow * sizeof(*d->allow));
    if (s->ndeny)
        memcpy(d->deny, s->deny, s->ndeny * sizeof(*d->deny));
    d->nallow_names = s->nallow_names;
    d->ndeny_names = s->ndeny_names;
    if (dup_names(&d->allow_names, s->allow_names, s->nallow_names) < 0 ||
        dup_names(&d->deny_names, s->deny_names, s->ndeny_names) < 0)
        goto fail;
    return 0;
fail:
    lel_net_policy_free(d);
    return -ENOMEM;
}

void lel__policy_seen(struct lel_net_ep *ep, const char *name, const struct lel_net_addr *a)
{
    struct seen *s = &ep->seen[ep->nseen++ % DNS_SEEN];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->addr.family = a->family == AF_INET ? 4 : 6;
    s->addr.bits = s->addr.family == 4 ? 32 : 128;
    memcpy(s->addr.addr, a->addr, 16);
}

static int name_match(const char *rule, const char *name)
{
    if (rule[0] == '*' && rule[1] == '.') {
        size_t rl = strlen(rule + 1), nl = strlen(name);
        return nl > rl && !strcasecmp(name + nl - rl, rule + 1);
    }
    return !strcasecmp(rule, name);
}

/* Whether `a` is in the CIDRs, or was answered for a name the rules name. */
static int listed(struct lel_net_ep *ep, const struct lel_cidr *c, size_t nc, char *const *names, size_t nn,
                  const struct lel_net_addr *a)
{
    for (size_t i = 0; i < nc; i++)
        if (lel__cidr_has(&c[i], a))
            return 1;
    if (!nn)
        return 0;
    unsigned n = ep->nseen < DNS_SEEN ? ep->nseen : DNS_SEEN;
    for (unsigned i = 0; i < n; i++) {
        if (!lel__cidr_has(&ep->seen[i].addr, a))
            continue;
        for (size_t k = 0; k < nn; k++)
            if (name_match(names[k], ep->seen[i].name))
                return 1;
    }
    return 0;
}

static int always_denied(lel_net_t *n, const struct lel_net_addr *a, const char **what)
{
    static const char *const ranges[][2] = {
        {"169.254.0.0/16", "a link-local address (the cloud metadata service is 169.254.169.254)"},
        {"127.0.0.0/8", "the host's loopback"}, {"0.0.0.0/8", "an unspecified address"},
        {"224.0.0.0/4", "a multicast address"}, {"255.255.255.255/32", "the broadcast address"},
        {"::1/128", "the host's loopback"}, {"::/128", "an unspecified address"},
        {"fe80::/10", "a link-local address"}, {"ff00::/8", "a multicast address"},
    };
    for (size_t i = 0; i < n->o.nallow_always; i++)
        if (lel__cidr_has(&n->o.allow_always[i], a))
            return 0;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        struct lel_cidr c;
        lel_cidr_parse(ranges[i][0], &c);
        if (lel__cidr_has(&c, a)) {
            *what = ranges[i][1];
            return 1;
        }
    }
    for (size_t i = 0; i < n->nself; i++)
        if (lel__cidr_has(&n->self[i], a)) {
            *what = "one of the host's own addresses";
            return 1;
        }
    return 0;
}

int lel__policy_check(struct lel_net_ep *ep, const struct lel_net_addr *dst, struct lel_net_addr *real, char *why,
                      size_t whylen)
{
    lel_net_t *n = ep->net;
    char text[64] = "?";
    inet_ntop(dst->family == AF_INET ? AF_INET : AF_INET6, dst->addr, text, sizeof(text));
    *why = 0;
    *real = *dst;
    if (dst->family != AF_INET && dst->family != AF_INET6) {
        snprintf(why, whylen, "address family %u", dst->family);
        return -EAFNOSUPPORT;
    }
    const struct lel_net_policy *p = &ep->pol;
    if (n->o.host_gateway && dst->family == AF_INET && !memcmp(dst->addr, n->o.gateway_v4, 4)) {
        /* the host gateway: the host's loopback, by the operator's choice; the sandbox's own
         * denyOut may still close it (it is no internet, so allow_internet_access is not asked) */
        if (!listed(ep, p->allow, p->nallow, p->allow_names, p->nallow_names, dst) &&
            listed(ep, p->deny, p->ndeny, p->deny_names, p->ndeny_names, dst)) {
            snprintf(why, whylen, "%s:%u (the host gateway) is in the sandbox's denyOut", text, dst->port);
            return -EACCES;
        }
        memset(real->addr, 0, 16);
        real->addr[0] = 127;
        real->addr[3] = 1;
        return 0;
    }
    const char *what = NULL;
    if (always_denied(n, dst, &what)) {
        snprintf(why, whylen, "%s:%u is %s", text, dst->port, what);
        return -ECONNREFUSED;
    }
    if (listed(ep, p->allow, p->nallow, p->allow_names, p->nallow_names, dst))
        return 0;
    if (listed(ep, p->deny, p->ndeny, p->deny_names, p->ndeny_names, dst)) {
        snprintf(why, whylen, "%s:%u is in the sandbox's denyOut", text, dst->port);
        return -EACCES;
    }
    if (!p->internet) {
        snprintf(why, whylen, "%s:%u: the sandbox has no internet access (allow_internet_access false)", text, dst->port);
        return -EACCES;
    }
    return 0;
}
