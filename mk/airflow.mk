# Airflow in its own virtualenv (.venv-airflow): Airflow 3.3 and PyFlink 2.0 cannot share one (protobuf 7 vs < 6).
# The project is installed there with --no-deps; airflow_dags/requirements.txt lists what its DAG code paths import.
# Anything needing PyFlink (submitting a Flink job, `up`) runs through the main venv's CLI as a subprocess.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_PY := $(AIRFLOW_VENV)/bin/python
AIRFLOW_HOME_DIR := $(CURDIR)/.run/airflow

.PHONY: airflow-venv airflow airflow-test
airflow-venv: $(AIRFLOW_VENV)/.installed
$(AIRFLOW_VENV)/.installed: airflow_dags/requirements.txt pyproject.toml
	@echo "==> Airflow virtualenv $(AIRFLOW_VENV)"
	@test -x $(AIRFLOW_PY) || $(PYTHON) -m venv $(AIRFLOW_VENV)
	@$(AIRFLOW_PY) -m pip install -q --upgrade pip
	@$(AIRFLOW_PY) -m pip install -q -r airflow_dags/requirements.txt
	@$(AIRFLOW_PY) -m pip install -q --no-deps -e .
	@touch $@

install: airflow-venv

# The DAGs against the local platform (`make up` first): scheduler, DAG processor, triggerer and API server in one
# process, UI on http://127.0.0.1:8080 (the admin password is printed and kept in $(AIRFLOW_HOME_DIR)).
airflow: airflow-venv python
	@mkdir -p $(AIRFLOW_HOME_DIR)
	@AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/airflow_dags AIRFLOW__CORE__LOAD_EXAMPLES=false \
		$(AIRFLOW_VENV)/bin/airflow standalone

# The platform tests start Kafka, Flink, ClickHouse through the main venv's CLI: they need its venv and the jars.
airflow-test: airflow-venv python jars
	@$(AIRFLOW_PY) -m pytest -ra --confcutdir=tests/airflow tests/airflow $(AIRFLOW_PYTEST_ARGS)

TEST_EXTRA += airflow-test
