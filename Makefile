# snapwarden: `make demo` runs the main job against the embedded simulator,
# `make test` runs vet and the race-enabled tests, `make bench` the benchmarks,
# `make deb` the Debian package (bin/snapwarden_VERSION_ARCH.deb).
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test vet demo bench clean deb

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/snapwarden ./cmd/snapwarden
	$(GO) build -o $(BIN)/snapwarden-sim ./cmd/snapwarden-sim

vet:
	$(GO) vet ./...

test: vet
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
		echo "chromium not found (apt-get install chromium): the browser tests (internal/service TestBrowser) are skipped"
	$(GO) test -race -count=1 ./...

demo: build
	./scripts/demo.sh

bench: build
	./scripts/bench.sh

deb: build
	$(GO) run ./internal/packaging/mkdeb -binary $(BIN)/snapwarden -out $(BIN)

clean:
	rm -rf $(BIN) demo
