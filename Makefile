# The two commands of the README: `make dev` (run Ava locally) and `make test` (run the test suite).
# Both bootstrap everything: a pinned uv in ./.tools and the locked dependencies in ./.venv.
# `make stop` stops a `make dev` running in another terminal; `make reset-dev` deletes the development data.
UV := .tools/bin/uv
# Where `make dev` keeps its SQLite database, photos and process id (the settings' development defaults).
DEV_DATA := data
DEV_PID := $(DEV_DATA)/dev.pid

.PHONY: dev stop reset-dev test lint bench bootstrap services browser

bootstrap:
	@scripts/bootstrap.sh

# The shell records its pid, then becomes uv (`exec`), which passes Ctrl+C / SIGTERM on to `ava-bot dev`.
dev: bootstrap
	@mkdir -p $(DEV_DATA) && echo $$$$ > $(DEV_PID) && exec $(UV) run ava-bot dev

# Only a process that is still `make dev`'s (its command line names ava-bot): a stale pid is never signalled.
stop:
	@pid=$$(cat $(DEV_PID) 2>/dev/null || true); \
	if [ -n "$$pid" ] && ps -o args= -p "$$pid" 2>/dev/null | grep -q "ava-bot dev"; then \
		kill -TERM "$$pid" && echo "Stopping Ava (pid $$pid)."; \
	else \
		echo "Ava is not running from make dev here."; \
	fi; \
	rm -f $(DEV_PID)

# Deletes the development database and photos after asking (keeps data/secret_key). Stop Ava first.
reset-dev:
	@pid=$$(cat $(DEV_PID) 2>/dev/null || true); \
	if [ -n "$$pid" ] && ps -o args= -p "$$pid" 2>/dev/null | grep -q "ava-bot dev"; then \
		echo "Ava is running (pid $$pid): stop it first (Ctrl+C, or make stop)."; exit 1; \
	fi; \
	printf "Delete the development data (%s/ava.sqlite3*, %s/media/)? [y/N] " "$(DEV_DATA)" "$(DEV_DATA)"; \
	read answer; \
	case "$$answer" in \
		y|Y|yes|YES) rm -rf $(DEV_DATA)/ava.sqlite3 $(DEV_DATA)/ava.sqlite3-* $(DEV_DATA)/media && echo "Development data deleted.";; \
		*) echo "Nothing deleted.";; \
	esac

services:
	@scripts/services.sh

# Debian's Chromium for the browser tests (tests/browser/); a no-op when it is installed.
browser:
	@scripts/browser.sh

test: bootstrap services browser
	$(UV) run pytest

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run mypy

# Every benchmark (figures, not pass/fail; bench/memory.py takes about seven minutes per run, twice). Give them a Redis database
# of their own: AVA_TEST_REDIS_URL=redis://127.0.0.1:6379/<n> make bench
bench: bootstrap services
	$(UV) run python -m bench.postprocess
	$(UV) run python -m bench.photo_job
	$(UV) run python -m bench.ingest
	$(UV) run python -m bench.turn
	$(UV) run python -m bench.memory
	$(UV) run python -m bench.memory --all-services
