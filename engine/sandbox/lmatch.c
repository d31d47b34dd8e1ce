/* lmatch.c - bounded Lua patterns. Semantics: Lua 5.4 reference manual, section 6.4.1. */
#include "lmatch.h"
#include "sandbox.h"
#include "util.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define MAXCAP   32
#define MAXDEPTH 200
#define CAP_OPEN (-1) /* capture started, not closed */
#define CAP_POS  (-2) /* position capture () */
#define SPECIALS "^$*+?.([%-"

typedef struct {
    const char *s0, *se; /* subject */
    const char *pe;      /* end of pattern */
    lua_State *L;
    unsigned long steps;
    int depth;
    int ncap;
    struct {
        const char *at;
        ptrdiff_t len;
    } cap[MAXCAP];
} mstate;

/* the budget: the slice's deadline and the kill flag, every 1024 steps */
static void tick(mstate *m) { wd_sandbox_tick(m->L, &m->steps); }

/* end of the single-character class starting at p */
static const char *class_end(mstate *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pe)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pe && *p == '^')
            p++;
        /* the first character of a set is taken literally, even ']' */
        do {
            if (p >= m->pe)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < m->pe)
                p++;
        } while (p >= m->pe || *p != ']');
        return p + 1;
    }
    return p;
}

static int class_has(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, but Lua 5.4 still has it (fuzz_lmatch found the gap) */
    default: return cl == c;
    }
    if (isupper(cl))
        r = !r;
    return r != 0;
}

/* p at '[', last at the closing ']' */
static int set_has(int c, const char *p, const char *last)
{
    int yes = 1;
    p++;
    if (*p == '^') {
        yes = 0;
        p++;
    }
    for (; p < last; p++) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p))
                return yes;
        } else if (p + 2 < last && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return yes;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return yes;
        }
    }
    return !yes;
}

static int one_char(mstate *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->se)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_has(c, (unsigned char)p[1]);
    case '[': return set_has(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(mstate *m, const char *s, const char *p);

static const char *greedy(mstate *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (one_char(m, s + n, p, ep)) {
        tick(m);
        n++;
    }
    for (; n >= 0; n--) {
        tick(m);
        const char *r = do_match(m, s + n, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

static const char *lazy(mstate *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        tick(m);
        const char *r = do_match(m, s, ep + 1);
        if (r)
            return r;
        if (!one_char(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_cap(mstate *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->ncap >= MAXCAP)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *r = do_match(m, s, p);
    if (!r)
        m->ncap--;
    return r;
}

static const char *close_cap(mstate *m, const char *s, const char *p)
{
    int l = m->ncap - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].at;
    const char *r = do_match(m, s, p);
    if (!r)
        m->cap[l].len = CAP_OPEN;
    return r;
}

static const char *balance(mstate *m, const char *s, const char *p)
{
    if (p + 1 >= m->pe)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->se || *s != p[0])
        return NULL;
    int depth = 1;
    while (++s < m->se) {
        tick(m);
        if (*s == p[1]) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == p[0]) {
            depth++;
        }
    }
    return NULL;
}

static int cap_index(mstate *m, int d)
{
    int l = d - '1';
    if (l < 0 || l >= m->ncap || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *backref(mstate *m, const char *s, int d)
{
    int l = cap_index(m, d);
    size_t len = (size_t)m->cap[l].len;
    if ((size_t)(m->se - s) >= len && memcmp(m->cap[l].at, s, len) == 0)
        return s + len;
    return NULL;
}

/* the end of a match of p at s, or NULL */
static const char *do_match(mstate *m, const char *s, const char *p)
{
    const char *r = NULL;
    if (++m->depth > MAXDEPTH)
        luaL_error(m->L, "pattern too complex");
    while (p < m->pe) {
        tick(m);
        if (*p == '(') {
            r = p + 1 < m->pe && p[1] == ')' ? open_cap(m, s, p + 2, CAP_POS) : open_cap(m, s, p + 1, CAP_OPEN);
            goto out;
        }
        if (*p == ')') {
            r = close_cap(m, s, p + 1);
            goto out;
        }
        if (*p == '$' && p + 1 == m->pe) {
            r = s == m->se ? s : NULL;
            goto out;
        }
        if (*p == '%' && p + 1 < m->pe) {
            char k = p[1];
            if (k == 'b') {
                s = balance(m, s, p + 2);
                if (!s)
                    goto out;
                p += 4;
                continue;
            }
            if (k == 'f') {
                p += 2;
                if (p >= m->pe || *p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int before = s == m->s0 ? 0 : (unsigned char)s[-1];
                int here = s < m->se ? (unsigned char)*s : 0;
                if (set_has(before, p, ep - 1) || !set_has(here, p, ep - 1))
                    goto out;
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)k)) {
                s = backref(m, s, k);
                if (!s)
                    goto out;
                p += 2;
                continue;
            }
        }
        const char *ep = class_end(m, p);
        int ok = one_char(m, s, p, ep);
        char q = ep < m->pe ? *ep : '\0';
        if (q == '?') {
            if (ok && (r = do_match(m, s + 1, ep + 1)))
                goto out;
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            r = ok ? greedy(m, s + 1, p, ep) : NULL;
            goto out;
        }
        if (q == '*') {
            r = greedy(m, s, p, ep);
            goto out;
        }
        if (q == '-') {
            r = lazy(m, s, p, ep);
            goto out;
        }
        if (!ok)
            goto out;
        s++;
        p = ep;
    }
    r = s;
out:
    m->depth--;
    return r;
}

/* ---- captures to Lua ------------------------------------------------------- */

static void push_cap(mstate *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s)); /* the whole match */
        return;
    }
    ptrdiff_t l = m->cap[i].len;
    if (l == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (l == CAP_POS)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->s0) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)l);
}

/* s NULL: no whole-match fallback (find's extra results) */
static int push_caps(mstate *m, const char *s, const char *e)
{
    int n = m->ncap == 0 && s ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_cap(m, i, s, e);
    return n;
}

static void reset(mstate *m)
{
    m->ncap = 0;
    m->depth = 0;
}

static void init(mstate *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->s0 = s;
    m->se = s + ls;
    m->pe = p + lp;
    m->steps = 0;
    reset(m);
}

/* 1-based, negative from the end, clamped as string.find does */
static size_t start_at(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int no_specials(const char *p, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if (strchr(SPECIALS, p[i]) && p[i])
            return 0;
    return 1;
}

static const char *plain_find(const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    return memmem(s, ls, p, lp);
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t at = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    if (at > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
        const char *hit = plain_find(s + at, ls - at, p, lp);
        if (!hit) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)lp));
        return 2;
    }
    mstate m;
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    init(&m, L, s, ls, p, lp);
    const char *from = s + at;
    do {
        reset(&m);
        const char *e = do_match(&m, from, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (lua_Integer)(from - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_caps(&m, NULL, NULL) + 2;
            }
            return push_caps(&m, from, e);
        }
    } while (from++ < m.se && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L) { return find_or_match(L, 1); }
static int l_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct {
    size_t pos;     /* next start, offset into the subject */
    ptrdiff_t last; /* end of the last match, -1 none */
} gm_state;

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    gm_state *g = lua_touserdata(L, lua_upvalueindex(3));
    mstate m;
    init(&m, L, s, ls, p, lp);
    for (const char *from = s + g->pos; from <= m.se; from++) {
        reset(&m);
        const char *e = do_match(&m, from, p);
        if (e && e - s != g->last) {
            g->pos = (size_t)(e - s);
            g->last = e - s;
            return push_caps(&m, from, e);
        }
    }
    g->pos = ls + 1;
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t at = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    if (at > ls)
        at = ls + 1;
    lua_settop(L, 2);
    gm_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->pos = at;
    g->last = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* a replacement string with %0-%9 and %% */
static void add_repl_string(mstate *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    for (size_t i = 0; i < l; i++) {
        if (r[i] != '%') {
            luaL_addchar(b, r[i]);
            continue;
        }
        i++;
        if (i < l && r[i] == '%') {
            luaL_addchar(b, '%');
        } else if (i < l && isdigit((unsigned char)r[i])) {
            if (r[i] == '0')
                luaL_addlstring(b, s, (size_t)(e - s));
            else {
                push_cap(m, r[i] - '1', s, e);
                luaL_tolstring(m->L, -1, NULL);
                lua_remove(m->L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(m->L, "invalid use of '%%' in replacement string");
        }
    }
}

/* 1 when something replaced the match */
static int add_value(mstate *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_caps(m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_cap(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_repl_string(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* keep the original text */
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    mstate m;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    init(&m, L, s, ls, p, lp);
    const char *src = s, *last = NULL;
    lua_Integer n = 0;
    int changed = 0;
#ifdef __clang_analyzer__ /* scan-build cannot see into liblua: luaL_checklstring raises, never NULL */
    if (!s)
        __builtin_unreachable();
#endif
    while (n < max) {
        reset(&m);
        const char *e = do_match(&m, src, p);
        if (e && e != last) {
            n++;
            changed = add_value(&m, &b, src, e, tr) | changed;
            src = last = e;
        } else if (src < m.se) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.se - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void wd_lmatch_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL},
    };
    lua_pushvalue(L, idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
