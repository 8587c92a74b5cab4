# The two commands of the README: `make dev` (run Ava locally) and `make test` (run the test suite).
# Both bootstrap everything: a pinned uv in ./.tools and the locked dependencies in ./.venv.
UV := .tools/bin/uv

.PHONY: dev test lint bench bootstrap services browser

bootstrap:
	@scripts/bootstrap.sh

dev: bootstrap
	$(UV) run ava-bot dev

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

bench: bootstrap services
	$(UV) run python -m bench.postprocess
	$(UV) run python -m bench.photo_job
