# The contract: on a fresh machine with Python 3.11 and gcc,
# `make run` and `make test` need nothing typed before them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: all install native run test lint unit bench clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# Reinstall when the project metadata or a native kernel changes.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard _native/*.pyx)
	$(PIP) install -q -e '.[test]'
	$(MAKE) native
	touch $(STAMP)

install: $(STAMP)

# Build the Cython kernels in place (the editable install imports them from here).
native: $(PY)
	$(PY) setup.py -q build_ext --inplace

run: install
	$(VENV)/bin/ringstack dev up

# mypy --strict on the sans-I/O cores (DESIGN.md, "Typing"); ruff everywhere.
CORES := common/timestamp.py common/bodyhash.py ring/hashing.py ring/_framed.py ring/inventory.py ring/builder.py \
	ring/ringfile.py ring/lookup.py storage_node/object_core.py storage_node/conditional_core.py \
	storage_node/rows_core.py storage_node/body_core.py storage_node/listing_core.py storage_node/sync_core.py \
	storage_node/paths.py storage_node/integrity.py proxy/quorum.py proxy/node_iter.py proxy/acl.py \
	proxy/_slo_core.py proxy/_tempauth_core.py replicator/object_core.py replicator/db_core.py \
	replicator/peers.py scheduler/candidates.py scheduler/_nova_core.py scheduler/microversion.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict $(CORES)

# The whole suite with the Cython kernels, then the unit and property suite
# again on the pure-Python twins (DESIGN.md: the suites run both ways).
test: install lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests
	RINGSTACK_PUREPYTHON=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit

bench: install
	$(VENV)/bin/ringstack bench all

clean:
	rm -rf build $(VENV) _native/*.c _native/*.so
