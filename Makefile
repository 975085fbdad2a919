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
LDLIBS := $(PKG_LIBS) -lcsv -lm -pthread

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
	@$(MAKE) --no-print-directory pyunit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory deploy-check

# Static checks of the release artefacts (scripts/check-deploy); the
# Dockerfile library check reads the ASan binaries.
deploy-check: bootstrap asan
	@scripts/check-deploy

# Unit tests of the Python services (pytest; real fake-upstream servers,
# a throwaway redis-server unless BASALT_TEST_REDIS_URL is set).
pyunit: bootstrap
	@.venv/bin/pytest -q -p no:cacheprovider services/llm-orchestrator/tests \
		services/mcp-server/tests

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

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
