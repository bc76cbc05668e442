# The two commands: `make demo` and `make test`. Both install what is missing first
# (scripts/bootstrap) and stop everything they start.
.PHONY: demo test bootstrap lint

# Extra arguments: make test ARGS="-m 'not slow'"; make demo ARGS="--duration 60"
ARGS ?=

demo:
	scripts/demo $(ARGS)

test:
	scripts/test $(ARGS)

bootstrap:
	scripts/bootstrap

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy agents devstack history scoring state streams
