# Two commands on a fresh Debian 12 machine with Rust:
#   make demo   replay the bundled sample capture and show what came out
#   make test   run every test (unit, property, integration on pcaps/ and ../shared/corpus when present)

CARGO ?= cargo
OUT ?= out/demo

.PHONY: deps demo test lint pcaps bench fuzz-smoke

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
	@echo; echo "== $(OUT)/alerts.jsonl: $$(wc -l < $(OUT)/alerts.jsonl) alerts, by rule"
	@python3 -c 'import collections,json,sys; c=collections.Counter((a["owasp"],a["type"],a["severity"]) for a in map(json.loads,open(sys.argv[1]))); [print(f"  {n:4}  {o}  {t:28} {s}") for (o,t,s),n in sorted(c.items())]' $(OUT)/alerts.jsonl
	@echo; echo "== $(OUT)/findings.jsonl: $$(wc -l < $(OUT)/findings.jsonl) findings (redacted), first 2"; head -n 2 $(OUT)/findings.jsonl
	@echo; echo "== $(OUT)/openapi/: inventory as OpenAPI 3.1, one file per service"
	@python3 -c 'import json,pathlib,sys; [print(f"  {p.name}: "+", ".join(f"{m.upper()} {t}" for t,ops in json.load(open(p))["paths"].items() for m in ops if m in ("get","put","post","delete","patch"))) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))]' $(OUT)/openapi
	@echo; echo "== $(OUT)/transactions.jsonl (first 1 of $$(wc -l < $(OUT)/transactions.jsonl))"; head -n 1 $(OUT)/transactions.jsonl

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

# A short run of every fuzz target (CI smoke test; real campaigns run for hours). cargo-fuzz needs nightly
# compiler flags: RUSTC_BOOTSTRAP lets the stable toolchain accept them.
FUZZ_SECONDS ?= 20
# A smoke run needs targets that build and run, not fast ones: an unoptimised build (with debug assertions)
# builds in ~2.5 min here against ~7 for cargo-fuzz's default single-codegen-unit release build. Campaigns: FUZZ_BUILD=-O.
FUZZ_BUILD ?= --dev
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --quiet --locked cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_BUILD)
	@for t in decode_packet sensor_packets tcp_reassembly http_stream analyzers capture_file config_loader signature_packs spec_loader; do \
		d=$$(mktemp -d); \
		seeds=""; case $$t in http_stream) seeds=../src/http/testdata;; analyzers) seeds="../src/http/testdata seeds/analyzers";; \
			capture_file) seeds=../pcaps;; config_loader) seeds=../systemd;; signature_packs) seeds=../signatures;; \
			spec_loader) seeds="../tests/realapi/specs ../tests/realapi/demo";; esac; \
		echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
		(cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_BUILD) $$t $$d $$seeds -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048) > $$d.log 2>&1 \
			|| { tail -n 40 $$d.log; exit 1; }; \
		tail -n 1 $$d.log; rm -rf $$d $$d.log; \
	done
