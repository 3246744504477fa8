# silentauth — two commands for a newcomer: `make run` and `make test`.
GO        ?= go
BIN       := bin
# Integration parts (kube-apiserver, etcd, helm, …) are built or installed
# once into this cache, outside the work tree so fresh clones reuse it.
TOOLS_DIR ?= $(or $(SILENTAUTH_TOOLS_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/silentauth/tools)

export SILENTAUTH_TOOLS_DIR := $(TOOLS_DIR)

.PHONY: all build run test tools tools-traefik vet fmt-check bench loadtest fuzz clean image release

all: build

# The version and commit stamped into the binaries (internal/buildinfo);
# `silentauth version`, the startup log and silentauth_build_info show them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILDINFO := github.com/silentauth/silentauth/internal/buildinfo

# The flags the image ships its binaries with (Dockerfile, scripts/tools/image):
# static, no file system paths, no VCS stamp, no symbol table or DWARF, and
# the version and commit stamped.
RELEASE_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false \
	-ldflags="-s -w -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)"

## build: compile bin/silentauth and bin/kubectl-silentauth as the image ships them
build:
	$(RELEASE_BUILD) -o $(BIN)/silentauth ./cmd/silentauth
	$(RELEASE_BUILD) -o $(BIN)/kubectl-silentauth ./cmd/kubectl-silentauth

## run: run the service on its embedded development defaults (loopback only)
run: build
	$(BIN)/silentauth serve

## tools: install or build the integration parts into $(TOOLS_DIR) (cached)
tools:
	@scripts/tools.sh

## tools-traefik: also build Traefik (10-15 minutes once) for its contract test
tools-traefik:
	@scripts/tools/traefik.sh

## test: formatting, vet, and every test with the race detector (the bench module's smoke test and the release tool's tests too)
test: tools fmt-check vet
	$(GO) test -race -count=1 ./...
	$(GO) -C bench test -race -count=1 ./...
	$(GO) -C scripts/release test -race -count=1 ./...
	$(GO) -C scripts/tools/image test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) -C bench vet ./...
	$(GO) -C scripts/release vet ./...
	$(GO) -C scripts/tools/image vet ./...

## bench: micro-benchmarks of the Check paths (-benchmem, 6 counts) summarised by benchstat
bench:
	@bench/micro.sh

## loadtest: load scenarios against the real binary over loopback beside a pass-through baseline (8-10 min)
LOADTEST_FLAGS ?=
loadtest:
	@bench/tools.sh
	$(GO) -C bench run ./loadtest $(LOADTEST_FLAGS)

## fuzz: run each fuzz target for FUZZTIME (default 30s), in every package that has one
FUZZTIME ?= 30s
# Each new interesting input is minimised for at most this long: Go's
# default (60s) let the config target spend whole runs minimising YAML
# instead of fuzzing.
FUZZMINIMIZETIME ?= 1s
FUZZ_PKGS = $(sort $(patsubst %/,./%,$(dir $(shell grep -rl --include='*_test.go' '^func Fuzz' authz internal cmd 2>/dev/null))))
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN) dist

DIST        ?= $(CURDIR)/dist
SIGNING_KEY ?=

## release: VERSION=v0.x.y [DIST=dir] [SIGNING_KEY=key.pem] builds binaries, archives, SBOMs, image index, chart, krew manifest, signed SHA256SUMS (docs/releasing.md)
release:
	$(GO) -C scripts/release run . -repo "$(CURDIR)" -version "$(VERSION)" -commit "$(COMMIT)" \
	  -dist "$(abspath $(DIST))" $(if $(SIGNING_KEY),-signing-key "$(abspath $(SIGNING_KEY))")

IMAGE         ?= silentauth
IMAGE_VERSION ?= $(VERSION)
IMAGE_BUILDER ?=

## image: build the container image (docker/podman, or daemonless into bin/image)
image:
	@builder="$(IMAGE_BUILDER)"; \
	if [ -z "$$builder" ]; then \
	  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then builder=docker; \
	  elif command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then builder=podman; \
	  else builder=oci; fi; \
	fi; \
	echo "image: $(IMAGE):$(IMAGE_VERSION) with $$builder"; \
	if [ "$$builder" = oci ]; then \
	  $(GO) -C scripts/tools/image run . -repo "$(CURDIR)" -out "$(CURDIR)/$(BIN)/image" \
	    -tarball "$(CURDIR)/$(BIN)/image.tar" -tag "$(IMAGE):$(IMAGE_VERSION)" -version "$(IMAGE_VERSION)" -commit "$(COMMIT)"; \
	else \
	  $$builder build --build-arg VERSION="$(IMAGE_VERSION)" --build-arg COMMIT="$(COMMIT)" -t "$(IMAGE):$(IMAGE_VERSION)" .; \
	fi
