# mldb-upgrade: two commands on a fresh Debian machine with Rust.
#   make demo   installs what is missing, builds, runs the demo
#   make test   installs what is missing, runs the whole test suite

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages the tests and the sandbox need (see reference/tooling.md).
APT_PACKAGES := zookeeper openssh-server openssh-client default-jre-headless libslf4j-java \
                netcat-openbsd tmux curl rsync libssl-dev pkg-config python3 python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps sdk build test faults demo bench lint clean install install-files

# `make install PREFIX=...`: the binaries, shell completions, man pages, the stock scripts and the
# editors' definitions file. DESTDIR is prepended for packaging.
PREFIX ?= /usr/local
BIN_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
SHARE := $(DESTDIR)$(PREFIX)/share

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# OpenMLDB's own Python SDK (the client operators run), in a virtual environment, for
# `sandbox load --client sdk` and the tests that write with it. Its wheel is Linux x86-64 only.
# It imports on Python 3.8 to 3.12 (on 3.13 its pinned sqlalchemy 2.0.27 fails): SDK_PYTHON=python3.12
# picks another interpreter.
SDK_VENV := $(CURDIR)/.venv-sdk
SDK_VERSION := 0.9.2
SDK_PYTHON ?= python3
sdk: deps
	@if [ "$$(uname -sm)" != "Linux x86_64" ]; then \
	  echo "OpenMLDB's SDK $(SDK_VERSION) is built for Linux x86-64 only: its tests will be skipped"; \
	elif ! $(SDK_VENV)/bin/python -c 'import openmldb' 2>/dev/null; then \
	  echo "installing OpenMLDB's SDK $(SDK_VERSION) into $(SDK_VENV)"; \
	  rm -rf $(SDK_VENV) && $(SDK_PYTHON) -m venv $(SDK_VENV) && \
	  $(SDK_VENV)/bin/pip install -q openmldb==$(SDK_VERSION) && \
	  { $(SDK_VENV)/bin/python -c 'import openmldb' || \
	    { echo "OpenMLDB's SDK $(SDK_VERSION) does not import with $$($(SDK_PYTHON) --version) (it needs 3.8 to 3.12):" \
	           "run \`make sdk SDK_PYTHON=python3.12\` (or another of those)"; rm -rf $(SDK_VENV); exit 1; }; }; \
	fi

build: deps
	$(CARGO) build --release --bins

test: deps sdk
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

install: build
	$(MAKE) --no-print-directory install-files

# What `install` copies, from the binaries already built in BIN_DIR.
install-files:
	@test -x $(BIN_DIR)/mldb-upgrade -a -x $(BIN_DIR)/openmldb-sim || \
	  { echo "no mldb-upgrade and openmldb-sim in $(BIN_DIR): run \`make install\` (it builds them) or set BIN_DIR"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/man/man1 $(SHARE)/bash-completion/completions \
	  $(SHARE)/zsh/site-functions $(SHARE)/fish/vendor_completions.d \
	  $(SHARE)/mldb-upgrade/scripts/examples $(SHARE)/mldb-upgrade/definitions
	install -m 755 $(BIN_DIR)/mldb-upgrade $(BIN_DIR)/openmldb-sim $(DESTDIR)$(PREFIX)/bin/
	$(BIN_DIR)/mldb-upgrade completions bash > $(SHARE)/bash-completion/completions/mldb-upgrade
	$(BIN_DIR)/mldb-upgrade completions zsh > $(SHARE)/zsh/site-functions/_mldb-upgrade
	$(BIN_DIR)/mldb-upgrade completions fish > $(SHARE)/fish/vendor_completions.d/mldb-upgrade.fish
	$(BIN_DIR)/mldb-upgrade man --dir $(SHARE)/man/man1
	install -m 644 scripts/upgrade.rhai scripts/rollback.rhai $(SHARE)/mldb-upgrade/scripts/
	install -m 644 scripts/examples/*.rhai $(SHARE)/mldb-upgrade/scripts/examples/
	install -m 644 definitions/mldb-upgrade.d.rhai $(SHARE)/mldb-upgrade/definitions/
	@echo "installed mldb-upgrade into $(DESTDIR)$(PREFIX) (stock scripts in $(SHARE)/mldb-upgrade/scripts)"

clean:
	$(CARGO) clean
