# sam2_ros: `make test` sets everything up (first run: a few minutes) and runs the suite.
.PHONY: setup test demo lint format clean

setup:
	@bash scripts/setup.sh

test: setup
	@bash scripts/test.sh

demo: setup
	@bash -c 'source scripts/env.sh && install/sam2_ros/lib/sam2_ros/sam2_demo --out demo_out'

lint: setup
	@bash -c 'source scripts/env.sh && ruff format --check . && ruff check .'

format: setup
	@bash -c 'source scripts/env.sh && ruff format . && ruff check --fix .'

clean:
	rm -rf build install log .venv .pytest_cache .ruff_cache
