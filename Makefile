# basalt — top-level build.
#
#   make            release build of every C service into build/bin/
#   make up         bootstrap, start postgres + redis + every service (foreground)
#   make down       stop what `make up` started
#   make test       bootstrap, unit tests under ASan+UBSan, end-to-end suite
#   make unit       only the Check unit tests (ASan+UBSan)
#   make e2e        only the end-to-end suite (pytest)
#   make pyunit     unit tests of the Python services (pytest)
#   make deploy-check  static checks of Dockerfiles, compose, k8s; cutover tool
#   make bench      benchmarks (see tests/bench/README.md)
#   make chaos      fault injection under load (tests/chaos; minutes)
#   make soak       soak run, SOAK_MINUTES=10 by default (tests/soak)
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS each (tests/fuzz/README.md)
#
# Layout: every libs/<name>/*.c goes into build/<mode>/lib/libbasalt.a; every
# services/<svc>/src/*.c except main.c goes into build/<mode>/lib/lib<svc>.a;
# a unit test links the test object before those archives, so a test that
# #includes a .c (to reach static functions) takes precedence over the
# archive member of the same module.

SHELL := /bin/bash
.DEFAULT_GOAL := all

CC ?= cc
PKGS := libmicrohttpd libcurl libpq hiredis libjwt jansson libargon2 openssl icu-uc icu-i18n
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Ilibs $(WARN) $(PKG_CFLAGS) -MMD -MP
# libcsv (automation imports) ships no .pc file
LDLIBS := -Wl,--as-needed $(PKG_LIBS) -lcsv -lm -pthread

REL_CFLAGS := $(BASE_CFLAGS) -O2 -g
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS)

SERVICES := $(patsubst services/%/src/main.c,%,$(wildcard services/*/src/main.c))
LIB_SRCS := $(wildcard libs/*/*.c)

# $(call objs,mode,sources)
objs = $(patsubst %.c,build/$(1)/obj/%.o,$(2))
svc_srcs = $(filter-out services/$(1)/src/main.c,$(wildcard services/$(1)/src/*.c))

REL_LIB := build/rel/lib/libbasalt.a
ASAN_LIB := build/asan/lib/libbasalt.a

BINS := $(addprefix build/bin/,$(SERVICES))
ASAN_BINS := $(addprefix build/asan/bin/,$(SERVICES))

UNIT_SRCS := $(wildcard libs/*/tests/test_*.c) $(wildcard services/*/tests/test_*.c)
UNIT_BINS := $(patsubst %.c,build/asan/tests/%,$(UNIT_SRCS))

.PHONY: all asan unit e2e test up down bootstrap bench clean lint
.PHONY: deploy-check
.PHONY: pyunit
.PHONY: chaos soak
# keep intermediate objects (tests, benches) so rebuilds stay incremental
.SECONDARY:
all: $(BINS)
asan: $(ASAN_BINS)

build/rel/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

$(REL_LIB): $(call objs,rel,$(LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(ASAN_LIB): $(call objs,asan,$(LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define service_rules
build/rel/lib/lib$(1).a: $(call objs,rel,$(call svc_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
build/asan/lib/lib$(1).a: $(call objs,asan,$(call svc_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
build/bin/$(1): build/rel/obj/services/$(1)/src/main.o build/rel/lib/lib$(1).a $(REL_LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(REL_CFLAGS) -o $$@ $$^ $(LDLIBS)
build/asan/bin/$(1): build/asan/obj/services/$(1)/src/main.o build/asan/lib/lib$(1).a $(ASAN_LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(ASAN_CFLAGS) -o $$@ $$^ $(LDLIBS)
build/asan/tests/services/$(1)/tests/%: build/asan/obj/services/$(1)/tests/%.o build/asan/lib/lib$(1).a $(ASAN_LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(ASAN_CFLAGS) -o $$@ $$^ $(CHECK_LIBS) $(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

# libFuzzer harnesses (tests/fuzz/README.md): tests/fuzz/<group>/<name>.c
# becomes build/fuzz/bin/<name>, linked with lib<group>.a (group = a
# service) and libbasalt.a, all built by clang with -fsanitize=fuzzer-no-link
# into build/fuzz/. No -Werror: clang's warnings differ from gcc's.
FUZZ_CC := clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Ilibs -Wall -Wextra \
	$(PKG_CFLAGS) -MMD -MP -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_LIB := build/fuzz/lib/libbasalt.a
FUZZ_GROUPS := libs $(SERVICES)
fuzz_srcs = $(wildcard tests/fuzz/$(1)/*.c)
fuzz_bins = $(patsubst tests/fuzz/$(1)/%.c,build/fuzz/bin/%,$(call fuzz_srcs,$(1)))
FUZZ_BINS := $(foreach g,$(FUZZ_GROUPS),$(call fuzz_bins,$(g)))
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 2

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(call objs,fuzz,$(LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(call fuzz_bins,libs): build/fuzz/bin/%: build/fuzz/obj/tests/fuzz/libs/%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

define fuzz_rules
build/fuzz/lib/lib$(1).a: $(call objs,fuzz,$(call svc_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
$(call fuzz_bins,$(1)): build/fuzz/bin/%: build/fuzz/obj/tests/fuzz/$(1)/%.o build/fuzz/lib/lib$(1).a $(FUZZ_LIB)
	@mkdir -p $$(dir $$@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call fuzz_rules,$(s))))

.PHONY: fuzz fuzz-build fuzz-smoke
fuzz-build: $(FUZZ_BINS)

# Each harness replays its regression inputs, then fuzzes for FUZZ_SECONDS
# (default 60) from its seeds, FUZZ_JOBS (2) at a time; prints execs and
# coverage per harness (scripts/run-fuzz).
fuzz: bootstrap fuzz-build
	@FUZZ_JOBS=$(FUZZ_JOBS) scripts/run-fuzz $(FUZZ_SECONDS) $(FUZZ_BINS)

# The short run `make test` does: a few seconds per harness.
fuzz-smoke: bootstrap fuzz-build
	@FUZZ_JOBS=$(FUZZ_JOBS) scripts/run-fuzz --smoke 3 $(FUZZ_BINS)

BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,build/bench/%,$(BENCH_SRCS))
build/bench/%: build/rel/obj/tests/bench/%.o $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

build/asan/tests/libs/%: build/asan/obj/libs/%.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# Unit tests that need PostgreSQL/Redis get BASALT_TEST_DATABASE_URL and
# BASALT_TEST_REDIS_URL from scripts/run-unit-tests (a throwaway cluster on
# free ports); they fail, not skip, when those are missing.
unit: bootstrap $(UNIT_BINS)
	@scripts/run-unit-tests $(UNIT_BINS)

e2e: bootstrap asan
	@scripts/run-e2e

test: bootstrap
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory pyunit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory deploy-check

# Static checks of the release artefacts (scripts/check-deploy); the
# Dockerfile library check reads the ASan binaries.
deploy-check: bootstrap asan
	@scripts/check-deploy

# Unit tests of the Python services and libs/python (pytest; real fake-upstream servers,
# a throwaway redis-server unless BASALT_TEST_REDIS_URL is set).
pyunit: bootstrap
	@.venv/bin/pytest -q -p no:cacheprovider services/llm-orchestrator/tests \
		services/mcp-server/tests libs/python/tests

bootstrap:
	@scripts/bootstrap

up: bootstrap all
	@scripts/dev-cluster up

down:
	@scripts/dev-cluster down

bench: bootstrap all $(BENCH_BINS)
	@tests/bench/run

lint:
	@scripts/lint

# Long runs, not part of `make test` (see README.md, "Chaos and soak").
chaos: bootstrap asan
	@.venv/bin/pytest -q -s -p no:cacheprovider tests/chaos

soak: bootstrap all
	@.venv/bin/python tests/soak/soak.py

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
