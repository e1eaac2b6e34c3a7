# Two commands on a fresh Debian 12 machine with Rust:
#   make demo   replay the bundled sample capture and show what came out
#   make test   run every test (unit, property, integration on pcaps/ and ../shared/corpus when present)

CARGO ?= cargo
OUT ?= out/demo

.PHONY: deps demo test lint pcaps bench fuzz-build

# libpcap is needed to build and run the live-capture feature (on by default). Installed only when missing.
deps:
	@if ! dpkg -s libpcap-dev >/dev/null 2>&1; then \
		echo "installing libpcap-dev (live capture)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libpcap-dev >/dev/null; \
	fi

demo: deps
	$(CARGO) build --release --quiet
	./target/release/mirador replay pcaps/demo.pcap --out $(OUT)
	@echo; echo "== $(OUT)/transactions.jsonl (first 3 of $$(wc -l < $(OUT)/transactions.jsonl))"; head -n 3 $(OUT)/transactions.jsonl
	@echo; echo "== $(OUT)/flows.jsonl (first 2 of $$(wc -l < $(OUT)/flows.jsonl))"; head -n 2 $(OUT)/flows.jsonl

test: deps
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Regenerate the sample captures (deterministic).
pcaps:
	$(CARGO) run --quiet --example gen-pcaps -- pcaps

bench:
	$(CARGO) bench --bench decode_reassembly
