# mldb-upgrade: two commands on a fresh Debian machine with Rust.
#   make demo   installs what is missing, builds, runs the demo
#   make test   installs what is missing, runs the whole test suite

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages the tests and the sandbox need (see reference/tooling.md).
APT_PACKAGES := zookeeper openssh-server openssh-client default-jre-headless libslf4j-java \
                netcat-openbsd tmux curl rsync libssl-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build test faults demo bench lint clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: deps
	$(CARGO) build --release --bins

test: deps
	$(CARGO) build --all-targets
	$(CARGO) test --lib --bins --tests

# The fault-injection suite (tests/faults): FAULT_SEED=n replays a run, FAULT_CASES=a,b picks cases.
faults: deps
	FAULTS=1 $(CARGO) test --test faults

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: build
	bash scripts/demo.sh

bench: deps
	$(CARGO) bench --bench drain
	$(CARGO) bench --bench flow
	$(CARGO) bench --bench scale

clean:
	$(CARGO) clean
