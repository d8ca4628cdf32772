# elmarc: `make run` (main job on the embedded dataset) and `make test` are all a fresh clone needs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export HYDRA_FULL_ERROR := 0

# front-ends of the quick-start report (all ten + the MFCC baseline)
RUN_FRONTENDS ?= mfcc,7x96,7x86,vgg,timbral,temporal,timbral_temporal,timbral_time,sample_level,frame_level,frame_level_many
ROOT    ?=
SEEDS   ?= 0,1,2

.PHONY: install run test bench bench-classify describe clean paper paper-gtzan paper-ballroom paper-us8k paper-esc10

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: every front-end on the embedded synthetic rhythm task, SVM + ELM, then the report.
run: install
	$(PYTHON) -m elmarc.main -m dataset=synthetic dataset.task=rhythm features=small \
	  frontend=$(RUN_FRONTENDS) classifier=svm,elm hydra.sweep.dir=multirun/quickstart extract.progress=false
	$(PYTHON) -m elmarc.report multirun/quickstart

test: install
	$(PYTHON) -m pytest -q

describe: install
	$(PYTHON) -m elmarc.describe

clean:
	rm -rf cache outputs multirun/quickstart .pytest_cache
