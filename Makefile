# Mailroom. Quick start: `make demo` and `make test` (both install what is missing first).

export CARGO_TARGET_DIR ?= $(HOME)/.cache/mailroom/target
MAILROOM := $(CARGO_TARGET_DIR)/debug/mailroom
DEMO_HOME := .mailroom-demo

.PHONY: setup plugins plugins-debian build lint test demo bench-%

setup:
	@scripts/setup

# Plugins, with the rustup wasm32-wasip2 target (or the Debian fallback where rustup has none).
plugins: setup
	@scripts/build-plugins

# The same plugins with Debian's toolchain: the tests check both builds behave alike.
plugins-debian: setup
	@MAILROOM_PLUGIN_TOOLCHAIN=debian MAILROOM_PLUGIN_OUT=$(CURDIR)/build/plugins-debian scripts/build-plugins

build: plugins
	cargo build --workspace --all-targets

lint: setup
	cargo fmt --all --check
	cd plugins && cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cd plugins && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/plugins cargo clippy --quiet --target wasm32-wasip2 -- -D warnings
	cd plugins && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/plugins cargo clippy --quiet --target wasm32-wasip2 -p mailroom-plugin-sdk --features contract -- -D warnings

test: plugins plugins-debian lint
	cd plugins && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/plugins-native cargo test --quiet -p mailroom-plugin-sdk -p imap -p gmail -p microsoft365 -p exchange -p lexicon-sentiment
	cargo test --workspace

# The main job on the embedded default (a SQLite file): connect a mailbox, push CRM
# data over the HTTP API, sync, read a deal's timeline. Then a hostile plugin refused.
demo: plugins
	@cargo build --quiet -p mailroom
	@MAILROOM=$(MAILROOM) scripts/demo
	@$(MAILROOM) --home $(DEMO_HOME) plugin check build/plugins/hostile.wasm | head -4

# `make bench-NAME` runs benches/NAME in release mode; its last lines are `label: value unit`.
bench-%: plugins
	cargo run --release --quiet -p bench-$*
