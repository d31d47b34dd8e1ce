# warden - build, test, demo, bench.  `make demo` and `make test` work on a fresh
# Debian 12 machine as root: both go through `make deps`.

SHELL := /bin/bash

LUA_VERSION ?= 5.4
LUA_PC      := lua$(LUA_VERSION)
LUA         := lua$(LUA_VERSION)
BUSTED      := $(LUA) /usr/bin/busted

DEB_PACKAGES := build-essential pkg-config liblua$(LUA_VERSION)-dev lua$(LUA_VERSION) \
                libcurl4-openssl-dev libssl-dev libyaml-dev lua-cjson lua-busted lua-check lua-yaml \
                libjansson-dev libevent-dev libpcre2-dev libsqlite3-dev libsodium-dev libmimalloc-dev bubblewrap curl chromium chromium-driver \
                clang libclang-rt-14-dev clang-tools cppcheck faketime sqlite3 zlib1g-dev prometheus \
                dpkg-dev adduser openssl man-db systemd redis-server libhiredis-dev

PKGS    := $(LUA_PC) yaml-0.1 jansson libevent libevent_openssl openssl libpcre2-8 libsodium libcurl libcrypto sqlite3 zlib hiredis
BUILD   ?= build
CC      ?= cc
CJSON_SO = $(shell $(LUA) -e 'print(package.searchpath("cjson", package.cpath) or "")' 2>/dev/null)
OPT     ?= -O2 -g
# the engine's layers, lowest first (docs/architecture.md): a folder uses only its own
# files and those of the folders before it; tools/layers.lua checks it
LAYERS   := base policy sandbox state audit runtime ops bindings operate serve cli
# WERROR=1 (CI) turns every warning into an error
WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes $(if $(WERROR),-Werror)
WD_CFLAGS := $(OPT) -std=c11 -D_GNU_SOURCE $(WARNINGS) -fPIC -pthread -Iengine/include $(LAYERS:%=-Iengine/%) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
           -DWD_CJSON_SO='"$(CJSON_SO)"' $(CFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl -lm -pthread
# the process allocator of our executables (docs/performance.md): thousands of runs
# allocate and free small blocks from several threads. Not in core.so (the host owns
# malloc there) nor under the sanitizers (which must see every allocation).
MALLOC  ?= -Wl,--no-as-needed -lmimalloc -Wl,--as-needed

ENGINE_H := $(wildcard $(LAYERS:%=engine/%/*.h)) engine/include/warden.h
CLI_SRC  := $(wildcard engine/cli/*.c)
CORE_SRC := $(filter-out $(CLI_SRC) engine/bindings/lua_core.c,$(wildcard $(LAYERS:%=engine/%/*.c)))
CORE_OBJ := $(CORE_SRC:engine/%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard engine/test/test_*.c)
TEST_BIN := $(TEST_SRC:engine/test/%.c=$(BUILD)/test/%)

# total(label, builddir): one "label: N passed, N failed" line from the two runners' outputs
define total
c=$$(sed -n 's/^ctests: \([0-9]*\) passed, \([0-9]*\) failed$$/\1 \2/p' $(2)/test-c.out); \
l=$$(sed -n 's/^\([0-9]*\) successes \/ \([0-9]*\) failures \/ \([0-9]*\) errors.*/\1 \2 \3/p' $(2)/test-lua.out); \
set -- $$c $$l; echo "$(1): $$(($$1 + $$3)) passed, $$(($$2 + $$4 + $$5)) failed"
endef

.PHONY: all deps npm-deps test test-redis install man deb deb-check test-c test-lua spec ctest layers format lint demo asan tsan bench fuzz fuzz-build analyze clean

all: $(BUILD)/warden $(BUILD)/lua/warden/core.so

# installs what is missing; apt-get update first, as the machine may be fresh
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory -q npm-deps || $(MAKE) --no-print-directory npm-deps

# the MCP servers, the official MCP SDK, and the OpenAI clients (the official `openai`,
# LangChain's, the Agents SDK) the specs run against: pinned exactly in
# tools/npm/package.json and its lock (engines accept Node 18 and 20: the overrides pin
# the dependencies that would not), installed into tools/npm/node_modules (git-ignored)
NPM_STAMP := tools/npm/node_modules/.package-lock.json
npm-deps: $(NPM_STAMP)
$(NPM_STAMP): tools/npm/package.json tools/npm/package-lock.json
	cd tools/npm && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILD)/obj/%.o: engine/%.c $(ENGINE_H)
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -c $< -o $@

$(BUILD)/libwarden.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/warden: $(CLI_SRC:engine/%.c=$(BUILD)/obj/%.o) $(BUILD)/libwarden.a
	$(CC) $(WD_CFLAGS) -o $@ $(MALLOC) $^ $(LDLIBS)

$(BUILD)/lua/warden/core.so: $(BUILD)/obj/bindings/lua_core.o $(BUILD)/libwarden.a
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -shared -o $@ $^ $(filter-out -l$(LUA_PC),$(LDLIBS))

$(BUILD)/test/%: engine/test/%.c engine/test/harness.h $(BUILD)/libwarden.a
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -o $@ $(MALLOC) $< $(BUILD)/libwarden.a $(LDLIBS)

# the fault-injecting LLM server the specs and benchmarks talk to
$(BUILD)/fakellm: spec/support/fakellm.c
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -o $@ $< $(LDLIBS)

# the HTTP load generator of the serve specs and benchmark
$(BUILD)/wdload: spec/support/wdload.c
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/bench/%: engine/bench/%.c $(BUILD)/libwarden.a
	@mkdir -p $(dir $@)
	$(CC) $(WD_CFLAGS) -o $@ $(MALLOC) $< $(BUILD)/libwarden.a $(LDLIBS)

# the builds of test, asan, tsan and fuzz use every core (JOBS); the tests run in order
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(TEST_BIN) $(BUILD)/fakellm $(BUILD)/wdload
	@set -o pipefail; $(MAKE) --no-print-directory test-c | tee $(BUILD)/test-c.out
	@set -o pipefail; $(MAKE) --no-print-directory test-lua | tee $(BUILD)/test-lua.out
	@$(MAKE) --no-print-directory test-redis
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory deb-check
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	@$(call total,total,$(BUILD))

test-c: $(TEST_BIN)
	@pass=0; fail=0; for t in $(TEST_BIN); do \
	  if out=$$($$t 2>&1); then echo "$$out" | tail -1; else echo "$$out"; fi; \
	  p=$$(echo "$$out" | sed -n 's/^\(.*: \)\?\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' | tail -1); \
	  f=$$(echo "$$out" | sed -n 's/^\(.*: \)\?\([0-9]*\) passed, \([0-9]*\) failed.*/\3/p' | tail -1); \
	  pass=$$((pass + $${p:-0})); fail=$$((fail + $${f:-1})); \
	done; echo "ctests: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# WARDEN_CHECK_RECORDS=1: an audit record with a member its event does not declare
# (engine/audit/events.c) aborts the engine that wrote it, so the spec fails
test-lua: all $(BUILD)/fakellm $(BUILD)/wdload
	@WARDEN_CHECK_RECORDS=1 tools/busted_shards.sh $(BUSTED) --output=plainTerminal

# the specs of the state store's users again, every policy they make on a Redis store
# (WARDEN_TEST_STORE=redis: a redis-server of each spec process's own, docs/scale-out.md)
REDIS_SPECS := budget breaker approval kill_switch rate_limit cache session detector compliance auth_block
test-redis: all $(BUILD)/fakellm $(BUILD)/wdload
	@echo "the same specs on Redis:"
	@WARDEN_TEST_STORE=redis WARDEN_CHECK_RECORDS=1 $(BUSTED) --output=plainTerminal $(REDIS_SPECS:%=spec/%_spec.lua)

# one spec file, optionally only the tests whose name matches FILTER (a Lua pattern):
#   make spec SPEC=spec/run_spec.lua FILTER="ends with a result"
spec: all $(BUILD)/fakellm $(BUILD)/wdload
	@test -n "$(SPEC)" || { echo "usage: make spec SPEC=spec/x_spec.lua [FILTER=text]"; exit 2; }
	@WARDEN_CHECK_RECORDS=1 $(BUSTED) --output=plainTerminal $(if $(FILTER),--filter="$(FILTER)") $(SPEC)

# one C test program, optionally only the tests whose name contains FILTER:
#   make ctest T=test_policy FILTER=reload
ctest:
	@test -n "$(T)" || { echo "usage: make ctest T=test_name [FILTER=text]  ($(notdir $(TEST_BIN)))"; exit 2; }
	@$(MAKE) --no-print-directory $(BUILD)/test/$(T)
	@WD_TEST_FILTER="$(FILTER)" $(BUILD)/test/$(T)

lint: layers
	@if command -v luacheck >/dev/null; then luacheck -q lua agents spec tools templates; fi

# the C sources in the house style (.clang-format; Debian's clang-format)
format:
	@command -v clang-format >/dev/null || { echo "format needs clang-format (apt-get install clang-format)"; exit 2; }
	@git ls-files 'engine/*.c' 'engine/*.h' 'spec/support/*.c' | xargs clang-format -i

# the engine's shape (docs/architecture.md): no call or include from a lower layer to a
# higher one, no loop of calls between files, no file over 800 lines nor function over 80
layers:
	@$(LUA) tools/layers.lua

# ---- install and package (docs/install.md) ----------------------------------------
# the binary finds its files from its own prefix (engine/base/home.h): nothing of the
# build's paths is compiled in
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^\#define WARDEN_VERSION "\(.*\)"/\1/p' engine/include/warden.h)
ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
SHARE    = $(DESTDIR)$(PREFIX)/share

# warden(1) from the binary's own help table, warden-policy(5) from docs/policy.md
man: $(BUILD)/man/warden.1 $(BUILD)/man/warden-policy.5
$(BUILD)/man/warden.1: $(BUILD)/warden
	@mkdir -p $(dir $@)
	$(BUILD)/warden help --man > $@
$(BUILD)/man/warden-policy.5: docs/policy.md tools/mdman.lua
	@mkdir -p $(dir $@)
	$(LUA) tools/mdman.lua docs/policy.md warden-policy 5 "File Formats" "the warden policy file" > $@

install: all man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/warden/lua/warden $(SHARE)/warden \
	  $(SHARE)/man/man1 $(SHARE)/man/man5 $(SHARE)/bash-completion/completions $(SHARE)/doc/warden
	install -m 0755 $(BUILD)/warden $(DESTDIR)$(PREFIX)/bin/warden
	install -m 0644 $(BUILD)/lua/warden/core.so $(DESTDIR)$(PREFIX)/lib/warden/lua/warden/core.so
	rm -rf $(SHARE)/warden/lua $(SHARE)/warden/web $(SHARE)/warden/templates $(SHARE)/warden/policies
	cp -R lua web templates $(SHARE)/warden/
	install -d $(SHARE)/warden/policies $(SHARE)/warden/contrib
	install -m 0644 policies/default.yaml policies/test.yaml $(SHARE)/warden/policies/
	cp -R contrib/prometheus contrib/systemd $(SHARE)/warden/contrib/
	install -m 0644 $(BUILD)/man/warden.1 $(SHARE)/man/man1/warden.1
	install -m 0644 $(BUILD)/man/warden-policy.5 $(SHARE)/man/man5/warden-policy.5
	install -m 0644 contrib/bash-completion/warden $(SHARE)/bash-completion/completions/warden
	install -m 0644 README.md docs/*.md $(SHARE)/doc/warden/
	@chmod -R u=rwX,go=rX $(SHARE)/warden

# build/warden_VERSION_ARCH.deb: /usr, the policy in /etc/warden as a conffile, the unit
DEBROOT := $(BUILD)/deb/root
deb: all man
	@command -v dpkg-deb >/dev/null || { echo "make deb needs dpkg-deb (Debian's dpkg)"; exit 2; }
	rm -rf $(BUILD)/deb && mkdir -p $(DEBROOT)/DEBIAN
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(CURDIR)/$(DEBROOT)
	gzip -9n $(DEBROOT)/usr/share/man/man1/warden.1 $(DEBROOT)/usr/share/man/man5/warden-policy.5
	strip --strip-unneeded --remove-section=.comment $(DEBROOT)/usr/bin/warden $(DEBROOT)/usr/lib/warden/lua/warden/core.so
	install -d $(DEBROOT)/etc/warden/agents $(DEBROOT)/etc/default $(DEBROOT)/lib/systemd/system
	sed -e 's|^  path: logs/agent_audit.jsonl|  path: /var/log/warden/audit.jsonl|' \
	    -e 's|^users:$$|users:\n  # root at the command line (warden run as root); map your own logins with os_user\n  operator: {role: admin, tier: premium, os_user: root}|' \
	    policies/default.yaml > $(DEBROOT)/etc/warden/policy.yaml
	printf '# the state store: budgets, approvals, breakers, kill switch (writable by the service)\nstore: {path: /var/lib/warden/warden.db}\n' >> $(DEBROOT)/etc/warden/policy.yaml
	$(BUILD)/warden policy check $(DEBROOT)/etc/warden/policy.yaml
	install -m 0644 contrib/debian/default $(DEBROOT)/etc/default/warden
	install -m 0644 contrib/systemd/warden.service $(DEBROOT)/lib/systemd/system/warden.service
	install -m 0644 contrib/debian/conffiles $(DEBROOT)/DEBIAN/conffiles
	install -m 0755 contrib/debian/postinst contrib/debian/prerm contrib/debian/postrm $(DEBROOT)/DEBIAN/
	mkdir -p $(BUILD)/deb/shlibs/debian && printf 'Source: warden\n\nPackage: warden\nArchitecture: any\n' > $(BUILD)/deb/shlibs/debian/control
	deps=$$(cd $(BUILD)/deb/shlibs && dpkg-shlibdeps -O -e$(CURDIR)/$(DEBROOT)/usr/bin/warden \
	  -e$(CURDIR)/$(DEBROOT)/usr/lib/warden/lua/warden/core.so 2>/dev/null | sed -n 's/^shlibs:Depends=//p'); \
	  test -n "$$deps" || { echo "dpkg-shlibdeps found no dependencies"; exit 2; }; \
	  size=$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1); \
	  sed -e "s|@VERSION@|$(VERSION)|" -e "s|@ARCH@|$(ARCH)|" -e "s|@SIZE@|$$size|" -e "s|@DEPENDS@|$$deps|" \
	    contrib/debian/control.in > $(DEBROOT)/DEBIAN/control
	cd $(DEBROOT) && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) $(BUILD)/warden_$(VERSION)_$(ARCH).deb

# the package's life on this machine (root): install, init, test, run, serve over TLS,
# remove, purge (tools/deb_check.sh; skips with a message when not root)
deb-check: deb
	@bash tools/deb_check.sh $(BUILD)/warden_$(VERSION)_$(ARCH).deb

demo: deps
	@$(MAKE) --no-print-directory all
	@rm -f logs/demo_audit.jsonl
	./$(BUILD)/warden run agents/research_assistant "What do our notes say about AI safety?" \
	  --user alice --policy policies/demo.yaml --llm mock:agents/research_assistant/scenarios/demo.yaml
	./$(BUILD)/warden audit verify logs/demo_audit.jsonl

# AddressSanitizer + UBSan over the C tests and the whole busted suite (the engine is
# loaded into lua5.4 with libasan preloaded; the interpreter's own leaks are not ours)
SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan OPT="$(SAN)" MALLOC= all build-asan/fakellm build-asan/wdload \
	  $(TEST_SRC:engine/test/%.c=build-asan/test/%)
	@set -o pipefail; $(MAKE) --no-print-directory BUILD=build-asan OPT="$(SAN)" MALLOC= test-c | tee build-asan/test-c.out
	@set -o pipefail; WARDEN_CHECK_RECORDS=1 WARDEN_BUILD=build-asan tools/busted_shards.sh \
	  env LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(BUSTED) --output=plainTerminal --cpath='build-asan/lua/?.so' | tee build-asan/test-lua.out
	@$(call total,asan,build-asan)

# ThreadSanitizer over the tests that run several threads at once (worker pool with the
# watchdog, the process-wide chunk cache, the audit log's fsync thread, the Redis
# backend's dialer thread). Not
# test_sandbox: TSan holds a signal until the thread calls into libc, so a pure Lua
# loop is never preempted under it.
TSAN_TESTS := test_pool test_chunks test_audit test_redis
tsan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" MALLOC= \
	  $(TSAN_TESTS:%=build-tsan/test/%)
	@set -e; for t in $(TSAN_TESTS); do TSAN_OPTIONS=halt_on_error=1 build-tsan/test/$$t; done

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/bench_tool $(BUILD)/bench/bench_runs $(BUILD)/bench/bench_mcp \
	  $(BUILD)/bench/bench_store $(BUILD)/fakellm $(BUILD)/wdload
	./$(BUILD)/bench/bench_tool 200000
	bash bench/mcp_bench.sh $(BUILD) 2000
	./$(BUILD)/bench/bench_runs 100 1000
	./$(BUILD)/bench/bench_runs --workers 1 1000
	./$(BUILD)/bench/bench_runs --workers 1 --agent bench/agents/react_watched 1000
	WARDEN_BUILD=$(BUILD) $(LUA) bench/serve_load.lua 100,200,1000 10
	bash bench/facade_bench.sh $(BUILD) 500
	WARDEN_BUILD=$(BUILD) $(LUA) bench/scale_bench.lua 5000 5

# libFuzzer harnesses (engine/fuzz/), built with Debian's clang under ASan and UBSan:
# `make fuzz FUZZ_SECONDS=N` runs each for N seconds over its committed seeds; `make test`
# runs each for TEST_FUZZ_SECONDS. A finding is kept in build-fuzz/findings/.
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 15
FUZZERS := policy policy_gen schema provider jsonlua audit lmatch http
FUZZ_SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
fuzz-build: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-fuzz CC=clang OPT="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" MALLOC= \
	  $(FUZZERS:%=build-fuzz/fuzz_%)

build-fuzz/fuzz_%: engine/fuzz/fuzz_%.c engine/fuzz/fuzz.h build-fuzz/libwarden.a
	$(CC) $(WD_CFLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libwarden.a $(LDLIBS)

fuzz: fuzz-build
	@engine/fuzz/run.sh $(FUZZ_SECONDS) build-fuzz $(FUZZ_ONLY)

# static analysis: cppcheck and clang's scan-build over engine/ (engine/analyze.supp
# explains each report left in place)
analyze: deps
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr --std=c11 \
	  --suppressions-list=engine/analyze.supp --suppress=missingIncludeSystem -D_GNU_SOURCE \
	  -DLLONG_MAX=9223372036854775807LL -Iengine/include $(LAYERS:%=-Iengine/%) -I/usr/include/lua$(LUA_VERSION) \
	  --include=/usr/include/jansson.h $(LAYERS:%=engine/%/*.c) engine/test/*.c engine/fuzz/*.c
	@rm -rf build-analyze && scan-build --status-bugs -o build-analyze/report \
	  $(MAKE) --no-print-directory -j2 BUILD=build-analyze MALLOC= build-analyze/libwarden.a build-analyze/warden
	@echo "analyze: cppcheck and scan-build found nothing"

clean:
	rm -rf build build-asan build-tsan build-fuzz build-analyze
