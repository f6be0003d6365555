# make test    ruff, the unit tests, the built wheel installed elsewhere, then every notebook under nbval (installs into
#              .venv when missing)
# make lint    ruff check (the rules: pyproject.toml [tool.ruff])
# make wheel-test  builds the wheel and runs a smoke test on it, installed outside the checkout
# make course  runs every notebook headless and prints the results table
# make profile NB=01  where notebook 01's time goes, cell by cell (benchmarks/results/profile/; no NB: every notebook)
# make lab     JupyterLab on the course
# make test-oldest  the unit tests and notebook 00 on Python 3.10 with the lowest versions pyproject.toml allows
# make site    the course website from the committed notebooks (build/site/index.html), then its checks (Python 3.11+)
# make test-browser  every explorer moved in JupyterLab in headless Chromium (Debian's chromium; screenshots in build/browser/)
# make clean   removes build/ and .venv-oldest/, keeps .venv/; make distclean removes .venv/ too
#
# Python 3.10 or newer makes .venv (PYTHON=python3.11 to pick one); a .venv without a working pip is made again
# (tools/venv.sh).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
CELL_TIMEOUT ?= 600

.PHONY: profile lint wheel-test oldest-env oldest-python site-python distclean site test-browser student-notebooks install test unit notebooks course table lab bench bench-capstone bench-throughput clean test-oldest pretrain

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@sh tools/venv.sh $(VENV) $(PYTHON)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

test: lint unit wheel-test notebooks

lint: install
	$(PY) -m ruff check .

# the wheel `pip install .` would build, installed into a folder of its own and imported from another (tests/test_wheel.py)
wheel-test: install
	$(PY) -m pytest tests/test_wheel.py -m wheel -q

# Sphinx 9 (the site extra) needs Python 3.11 or newer
site-python: $(VENV)/.installed
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make site and make test-browser need" \
		"Python 3.11 or newer (Sphinx 9); $(VENV) runs $$($(PY) --version 2>&1): rm -rf $(VENV), then make site" \
		"PYTHON=python3.11" >&2; exit 1; }

$(VENV)/.site-installed: pyproject.toml $(VENV)/.installed
	@$(MAKE) --no-print-directory site-python VENV=$(VENV) PYTHON=$(PYTHON)
	$(PY) -m pip install -e '.[dev,site,browser]'
	touch $@

# warnings are errors; the notebooks are rendered as committed, never re-executed (site/conf.py)
site: $(VENV)/.site-installed
	rm -rf build/site
	$(PY) -m sphinx -W --keep-going -q -b html -c site . build/site
	$(PY) -m pytest tests/test_site.py -m site -q
	@echo "the course site: build/site/index.html"

# found as tests/test_browser.py finds it: $CHROMIUM, else `chromium` on the PATH, else Debian's /usr/bin/chromium
CHROMIUM ?= $(shell command -v chromium 2>/dev/null || echo /usr/bin/chromium)
test-browser: $(VENV)/.site-installed
	@test -x "$(CHROMIUM)" || { echo "no Chromium at $(CHROMIUM): apt-get install chromium (Debian), or set" \
		"CHROMIUM=/path/to/chromium" >&2; exit 1; }
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/test_browser.py -m browser -q

unit: install
	$(PY) -m pytest tests -q

notebooks: install
	VLMLEARN_AUDIT_FIGURES=1 $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) notebooks -q --ignore=notebooks/exercises

NB ?=
profile: install
	for nb in notebooks/$(NB)*_*.ipynb; do $(PY) tools/profile_notebook.py $$nb --write || exit 1; done

course: install
	$(PY) -m vlmlearn.course

table: install
	$(PY) -m vlmlearn.course --table

# The declared floors are the tested ones: Python 3.10 and every direct dependency at its lowest allowed version
# (uv's lowest-direct resolution), in a separate environment. OLDEST_PYTHON is a Python 3.10 interpreter: pyenv's,
# else python3.10 on the PATH, else /usr/bin/python3.10.
OLDEST_VENV   ?= .venv-oldest
OLDEST_PYTHON ?= $(shell pyenv prefix 3.10 2>/dev/null | sed 's|$$|/bin/python3.10|' | grep . || \
                   command -v python3.10 2>/dev/null || echo /usr/bin/python3.10)
UV            := $(VENV)/bin/uv

$(UV): $(VENV)/.installed
	$(PY) -m pip install 'uv>=0.5'

# checked first, before anything is installed
oldest-python:
	@"$(OLDEST_PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null || { \
		echo "make test-oldest needs a Python 3.10 interpreter; OLDEST_PYTHON=$(OLDEST_PYTHON) gives:" \
			"$$("$(OLDEST_PYTHON)" --version 2>&1 || echo nothing)." >&2; \
		echo "Get one (pyenv install 3.10, apt-get install python3.10, or uv: .venv/bin/uv python install 3.10)" \
			"and point at it: make test-oldest OLDEST_PYTHON=/path/to/python3.10" >&2; exit 1; }

oldest-env: oldest-python $(UV)
	$(UV) venv --allow-existing --no-python-downloads --python $(OLDEST_PYTHON) $(OLDEST_VENV)
	$(UV) pip install --python $(OLDEST_VENV)/bin/python --resolution lowest-direct -e '.[dev]'

test-oldest: oldest-env
	$(OLDEST_VENV)/bin/python -m pytest tests -q
	VLMLEARN_AUDIT_FIGURES=1 $(OLDEST_VENV)/bin/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=$(CELL_TIMEOUT) -q notebooks/00_data_landscape.ipynb

# the learner's copies, notebooks/exercises/, from the cell tags of the full notebooks
student-notebooks: install
	$(PY) tools/make_student_notebooks.py

lab: install
	$(VENV)/bin/jupyter lab notebooks

# the shipped checkpoints: notebook 01's CLIP (~1 min), 03's MAE (~11 min), 05's painter (~15 min) and 11's text LM and
# projectors (~8 min), vlmlearn/shipped/checkpoints/ (package data)
pretrain: install
	$(PY) benchmarks/pretrain_clip.py
	$(PY) benchmarks/pretrain_mae.py
	$(PY) benchmarks/pretrain_painter.py
	$(PY) benchmarks/pretrain_gvlm.py

# notebook 09's grid and its controls (benchmarks/results/09_label_efficiency.json, 09_label_efficiency_controls.json)
bench-capstone: install
	$(PY) benchmarks/label_efficiency.py
	$(PY) benchmarks/label_efficiency_controls.py

# vlmlearn.train_clip beside open_clip_train on one model and CSV (benchmarks/results/10_throughput_vs_open_clip.json)
bench-throughput: install
	$(PY) benchmarks/throughput_vs_open_clip.py

# every benchmark file and shipped checkpoint whose code changed since it was made (benchmarks/bench.py; NB=07: only
# notebook 07's; prints what it re-ran and the wall time)
bench: install
	$(PY) benchmarks/bench.py $(NB)

# the build outputs and the oldest-versions environment; .venv/ stays (it takes minutes to make again)
clean:
	rm -rf build $(OLDEST_VENV)

distclean: clean
	rm -rf $(VENV)
