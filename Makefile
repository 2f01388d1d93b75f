# The README's two commands: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
VENV312 ?= .venv312
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-main test-312 demo bench lint docs clean

test: test-main test-312

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,docs,hiredis,msgpack,zstd]'
	touch $(STAMP)

test-main: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(MAKE) docs
	@scripts/ensure_chromium.sh
	$(PY) -m pytest -q

# Second leg: Python 3.12 with the newest Django, when a 3.12 interpreter runs here.
test-312:
	@py312=$$(scripts/find_python312.sh); \
	if [ -z "$$py312" ]; then \
		echo "NOTICE: no working python3.12 found; skipping the Python 3.12 / newest-Django leg."; \
	else \
		echo "== Python 3.12 leg: $$py312"; \
		test -x $(VENV312)/bin/python || "$$py312" -m venv $(VENV312) || exit 1; \
		$(VENV312)/bin/python -m pip install -q --disable-pip-version-check -U -e '.[test,hiredis,msgpack,zstd]' 'Django' || exit 1; \
		$(VENV312)/bin/python -c 'import django, sys; print("Python", sys.version.split()[0], "Django", django.get_version())'; \
		$(VENV312)/bin/python -m pytest -q || exit 1; \
	fi

# The example site on four throwaway nodes (MODE=redis-cluster: a local Redis Cluster).
demo: $(STAMP)
	$(PY) scripts/demo.py $(if $(MODE),--mode $(MODE))

bench: $(STAMP)
	$(PY) bench/bench_map.py
	$(PY) bench/bench_cache.py
	$(PY) bench/bench_async.py

# The docs, with every warning (a broken link or reference) an error.
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(VENV312) .rbbench .django-tests docs/_build
