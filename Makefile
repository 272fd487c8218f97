# facelab: `make course` sets everything up and runs the course; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The course data beside the repository (this project's machines and CI) when it is there; elsewhere
# facelab's default data root (~/.cache/facelab/data), which `make course` fills first.
ifneq ($(wildcard ../shared/data),)
export FACELAB_DATA ?= $(abspath ../shared/data)
endif

.PHONY: setup course test smoke clean-notebooks

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[course,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (facelab)"
	touch $@

setup: $(VENV)/.installed  ## a virtual environment with facelab, the course's tools and its Jupyter kernel, at the tested versions (constraints.txt)

course: setup  ## the main job: the data (if FACELAB_DATA is unset), every notebook -> executed/ and results/REPORT.md (FULL=1: all of LFW; SMOKE=1: every lesson shrunk to seconds)
ifeq ($(FACELAB_DATA),)
	$(BIN)/facelab data download course
endif
	$(BIN)/python -m facelab.course --output executed --results results $(if $(FULL),--full) $(if $(SMOKE),--smoke)

test: setup  ## unit tests and every notebook in smoke mode
	$(BIN)/python -m pytest -q -ra

clean-notebooks:  ## strip outputs from the committed notebooks
	$(BIN)/python -m facelab.course --strip
