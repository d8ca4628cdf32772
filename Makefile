# elmarc: `make run` (main job on the embedded dataset) and `make test` are all a fresh clone needs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

ALL_FRONTENDS   := mfcc,7x96,7x86,vgg,timbral,temporal,timbral_temporal,timbral_time,sample_level,frame_level,frame_level_many
MUSIC_FRONTENDS := mfcc,7x96,7x86,vgg,timbral,temporal,timbral_temporal,sample_level,frame_level,frame_level_many
SOUND_FRONTENDS := mfcc,7x96,7x86,vgg,timbral,timbral_time,sample_level,frame_level,frame_level_many
SEEDS   ?= 0,1,2
WIDTHS  ?= small,large
STAMPNOW = $(shell date +%Y-%m-%d_%H-%M-%S)
comma   := ,
# the sweep axes that the classifier stage adds on top of the cached features
STUDY   := classifier=svm,elm classify.standardize=false,true

GTZAN_ROOT    ?=
BALLROOM_ROOT ?=
US8K_ROOT     ?=
ESC10_ROOT    ?= ../shared/data/esc10
FSDD_ROOT     ?=

.PHONY: install run test test-quick bench bench-classify describe clean paper paper-gtzan paper-ballroom paper-us8k paper-esc10 esc10-small random-vs-trained-esc10 proxy-study proxy-tables search search-confirm

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: every front-end on both embedded synthetic tasks, SVM + ELM, 3 seeds, then the report.
run: install
	@dir=multirun/run-$$(date +%Y%m%d-%H%M%S); \
	$(PYTHON) -m elmarc.main -m dataset=synthetic dataset.task=rhythm,timbre features=small \
	  frontend=$(ALL_FRONTENDS) seed=$(SEEDS) classifier=svm,elm extract.progress=false \
	  hydra.sweep.dir=$$dir || { $(PYTHON) -m elmarc.report $$dir; exit 1; }

# one pytest worker per core, each pinned to its core (tests/conftest.py); PYTEST_WORKERS=0 runs them in this process
PYTEST_WORKERS ?= auto
test: install
	$(PYTHON) -m pytest -q -n $(PYTEST_WORKERS)

# the inner loop: every test but those marked slow (whole jobs, sweeps, subprocesses, training, kills)
test-quick: install
	$(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

describe: install
	$(PYTHON) -m elmarc.describe

# the decode section uses the real ESC-10 OGG files when they are beside the checkout
# with ESC-10 beside the checkout: its clips for the decode section, and its small-width features
# (extracted once into cache/, seed 0) for the classifier section
bench: install
	$(if $(wildcard $(ESC10_ROOT)),$(PYTHON) -m elmarc.main -m dataset=esc10 dataset.root=$(ESC10_ROOT) \
	  frontend=$(SOUND_FRONTENDS) features=small seed=0 stage=extract extract.progress=false \
	  hydra.sweep.dir=multirun/bench-esc10-features-$(STAMPNOW) >/dev/null)
	$(PYTHON) -m benchmarks.bench $(if $(wildcard $(ESC10_ROOT)),--decode-root $(ESC10_ROOT) \
	  --svmconv-features $$(ls -d cache/features/esc10-*-small-s0-* cache/features/esc10-mfcc-any-* 2>/dev/null | paste -sd, -))

bench-classify: install
	$(PYTHON) -m benchmarks.bench --only classify

# --- the paper's sweeps: make paper-gtzan GTZAN_ROOT=/data/gtzan ------------------------------
# every front-end the paper used for the dataset x both widths x SVM and ELM x 3 seeds, features
# as extracted and standardised, the paper protocol and the nested one; ends with the report.
define sweep
	@test -n "$(2)" || { echo "set $(3)=/path/to/your/copy"; exit 2; }
	@dir=multirun/paper-$(1)-$(STAMPNOW); \
	$(PYTHON) -m elmarc.main -m dataset=$(1) dataset.root=$(2) frontend=$(4) features=$(WIDTHS) \
	  seed=$(SEEDS) $(STUDY) $(5) hydra.sweep.dir=$$dir $(EXTRA) \
	  || { $(PYTHON) -m elmarc.report $$dir; exit 1; }    # the callback is skipped when a job fails
endef

paper-gtzan: install
	$(call sweep,gtzan,$(GTZAN_ROOT),GTZAN_ROOT,$(MUSIC_FRONTENDS),protocol=predefined)

paper-ballroom: install
	$(call sweep,ballroom,$(BALLROOM_ROOT),BALLROOM_ROOT,$(MUSIC_FRONTENDS),protocol=paper$(comma)nested)

paper-us8k: install
	$(call sweep,urbansound8k,$(US8K_ROOT),US8K_ROOT,$(SOUND_FRONTENDS),protocol=paper$(comma)nested)

paper-esc10: install
	$(call sweep,esc10,$(ESC10_ROOT),ESC10_ROOT,$(SOUND_FRONTENDS),protocol=paper$(comma)nested)

paper: paper-gtzan paper-ballroom paper-us8k

# the ESC-10 study at the small width only (minutes on 2 cores)
esc10-small: WIDTHS = small
esc10-small: paper-esc10

# Random vs trained (README): every CNN front-end trained end to end on ESC-10's 5 folds beside its random
# features, SVM and ELM on both. Resumes from its checkpoints: run it again after an interruption.
TRAIN_FRONTENDS := temporal,7x96,frame_level,frame_level_many,7x86,timbral_temporal,timbral_time,timbral,sample_level,vgg
RECIPE       ?= budget
STUDY_SEEDS  ?= 0
STUDY_DIR    ?= multirun/random-vs-trained-esc10
random-vs-trained-esc10: install
	$(PYTHON) -m elmarc.main -m dataset=esc10 dataset.root=$(ESC10_ROOT) frontend=$(TRAIN_FRONTENDS) features=small \
	  seed=$(STUDY_SEEDS) classifier=svm,elm "stage='all,train'" recipe=$(RECIPE) extract.progress=false \
	  recipe.progress=false hydra.sweep.dir=$(STUDY_DIR) $(EXTRA) || { $(PYTHON) -m elmarc.report $(STUDY_DIR); exit 1; }

# Which training-free predictor (README): the ten CNN front-ends and the declared family (frontend=family/*) on
# ESC-10 and FSDD (its speaker folds, 6 takes of each digit: 360 clips); SVM and ELM on random features, the NAS
# proxies at initialisation, and training with the budget recipe. Resumable on one machine (the cache) and across
# machines (the CSV): with training it runs only the front-ends the CSV has no trained rows for, then merges.
# PROXY_STAGES='all,proxies' gives every training-free condition without training anything.
PROXY_SET      ?= ten
PROXY_DATASET  ?= esc10
PROXY_STAGES   ?= all,train
PROXY_DIR      ?= multirun/proxy-study/$(PROXY_DATASET)-$(PROXY_SET)
PROXY_CSV      ?= docs/data/proxies/$(PROXY_DATASET)-$(PROXY_SET).csv
FAMILY_FRONTENDS = $(shell $(PYTHON) -m elmarc.frontends.family list --interleave | paste -sd, -)
PROXY_FRONTENDS  = $(if $(filter family,$(PROXY_SET)),$(FAMILY_FRONTENDS),$(TRAIN_FRONTENDS))
PROXY_TODO       = $(if $(findstring train,$(PROXY_STAGES)),$(shell $(PYTHON) -m elmarc.report.study --untrained $(PROXY_CSV) --frontends $(PROXY_FRONTENDS)),$(PROXY_FRONTENDS))
# the family sees 5 s (ESC-10's clip length; SPEC's 29.2 s repeats it six times): a sixth of the training cost.
# The ten keep SPEC's input (vgg's pools need 1280 frames).
PROXY_INPUT_family = input.n_samples=60000 input.n_frames=235
PROXY_INPUT_ten    =
PROXY_DATA_esc10 = dataset=esc10 dataset.root=$(ESC10_ROOT)
PROXY_DATA_fsdd  = dataset=fsdd dataset.root=$(FSDD_ROOT) dataset.takes_per_digit=6
proxy-study: install
	@todo='$(PROXY_TODO)'; if [ -z "$$todo" ]; then echo "$(PROXY_CSV): every front-end is trained"; exit 0; fi; \
	set -x; $(PYTHON) -m elmarc.main -m $(PROXY_DATA_$(PROXY_DATASET)) $(PROXY_INPUT_$(PROXY_SET)) frontend=$$todo features=small \
	  seed=$(STUDY_SEEDS) classifier=svm,elm "stage='$(PROXY_STAGES)'" recipe=$(RECIPE) extract.progress=false \
	  recipe.progress=false hydra.sweep.dir=$(PROXY_DIR) $(EXTRA) || { $(PYTHON) -m elmarc.report $(PROXY_DIR); exit 1; }; \
	$(PYTHON) -m elmarc.report.study $(PROXY_DIR) --set $(PROXY_SET) --out $(PROXY_CSV)

# the README's table from the study's CSVs (docs/data/proxies/*.csv): nothing is trained or extracted
proxy-tables: install
	$(PYTHON) -m elmarc.report.study --tables docs/data/proxies

# The architecture search (README "Find the architecture"): SEARCH_TRIALS trials of SEARCH_SAMPLER (tpe, or random:
# the baseline) over SEARCH_SPACE, scored by SEARCH_PREDICTOR on the folds the search may read; resumable (rerun it).
# Its trials.csv lands in docs/data/search/. Then make search-confirm trains its top 3 beside the ten.
SEARCH_DATASET   ?= esc10
SEARCH_SPACE     ?= audio
SEARCH_PREDICTOR ?= svm
SEARCH_SAMPLER   ?= tpe
SEARCH_TRIALS    ?= 60
SEARCH_NAME       = $(SEARCH_DATASET)-$(SEARCH_SPACE)-$(SEARCH_PREDICTOR)-$(SEARCH_SAMPLER)
SEARCH_DIR       ?= multirun/search/$(SEARCH_NAME)
search: install
	$(PYTHON) -m elmarc.main -m hydra/sweeper=search space=$(SEARCH_SPACE) $(PROXY_DATA_$(SEARCH_DATASET)) features=small \
	  seed=0 hydra.sweeper.predictor=$(SEARCH_PREDICTOR) hydra.sweeper.sampler=$(SEARCH_SAMPLER) \
	  hydra.sweeper.n_trials=$(SEARCH_TRIALS) extract.progress=false hydra.sweep.dir=$(SEARCH_DIR) $(EXTRA)
	mkdir -p docs/data/search && cp $(SEARCH_DIR)/trials.csv docs/data/search/$(SEARCH_NAME).csv && \
	  cp $(SEARCH_DIR)/compare.csv docs/data/search/$(SEARCH_NAME)-compare.csv && \
	  cp $(SEARCH_DIR)/search.md docs/data/search/$(SEARCH_NAME).md && cp $(SEARCH_DIR)/trajectory.png docs/data/search/$(SEARCH_NAME).png

# The top k of the TPE and random searches, trained on the held-out folds only beside the ten (their training runs
# are the proxy study's), then
# the held-out folds' table: multirun/search/<dataset>-<space>-<predictor>-confirm/, docs/data/search/*-confirm.csv.
CONFIRM_NAME   = $(SEARCH_DATASET)-$(SEARCH_SPACE)-$(SEARCH_PREDICTOR)
CONFIRM_FROM   = $(wildcard multirun/search/$(CONFIRM_NAME)-tpe multirun/search/$(CONFIRM_NAME)-random)
CONFIRM_TOP    = $(shell for d in $(CONFIRM_FROM); do ls $$d/best/frontend/search; done | sed 's/\.yaml$$//;s/^/search\//' | sort -u | paste -sd, -)
CONFIRM_FOLDS  = $(shell $(PYTHON) -c 'import sys; from pathlib import Path; from elmarc.search.confirm import held_out; print(str(held_out(Path(sys.argv[1]))).replace(" ", ""))' $(firstword $(CONFIRM_FROM)) 2>/dev/null)
CONFIRM_PATHS  = $(shell for d in $(CONFIRM_FROM); do echo file://$$(realpath $$d)/best; done | paste -sd, -)
search-confirm: install
	@test -n "$(CONFIRM_FROM)" || { echo "no search $(CONFIRM_NAME)-tpe or -random under multirun/search: run make search (and SEARCH_SAMPLER=random) first"; exit 2; }
	$(PYTHON) -m elmarc.main -m hydra.searchpath=[$(CONFIRM_PATHS)] $(PROXY_DATA_$(SEARCH_DATASET)) features=small seed=0 \
	  frontend=$(CONFIRM_TOP),$(TRAIN_FRONTENDS) protocol=nested classifier=svm,elm "stage='all,train'" recipe=$(RECIPE) \
	  train_folds=$(CONFIRM_FOLDS) extract.progress=false recipe.progress=false hydra.sweep.dir=multirun/search/$(CONFIRM_NAME)-confirm $(EXTRA) || \
	  { $(PYTHON) -m elmarc.report multirun/search/$(CONFIRM_NAME)-confirm; exit 1; }
	$(PYTHON) -m elmarc.search.confirm multirun/search/$(CONFIRM_NAME)-confirm $(foreach d,$(CONFIRM_FROM),--search $(d)) \
	  --out docs/data/search/$(CONFIRM_NAME)-confirm.md

clean:
	rm -rf cache outputs .pytest_cache
