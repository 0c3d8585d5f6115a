# Builds and tests a C plugin. A plugin's Makefile sets these and includes
# this file:
#
#   NAME    = redact                 # the component is NAME.wasm
#   SOURCES = redact.c               # the plugin's sources
#   TESTS   = test_redact.c          # its native unit tests (a main())
#   CFLAGS  = -I vendor              # extra flags, for both builds
#   include path/to/sdk/c/plugin.mk
#
# make        the component, NAME.wasm (sdk/c/build)
# make test   the unit tests, natively with the machine's cc
WASMPIPE_C_SDK := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
HOSTCC ?= cc

.PHONY: all test clean
all: $(NAME).wasm

$(NAME).wasm: $(SOURCES) $(wildcard $(WASMPIPE_C_SDK)/*.[ch]) $(WASMPIPE_C_SDK)/wit/transform.wit
	$(WASMPIPE_C_SDK)/build -o $@ $(CFLAGS) $(SOURCES)

build/test: $(SOURCES) $(TESTS) $(wildcard $(WASMPIPE_C_SDK)/*.[ch])
	@mkdir -p build
	$(HOSTCC) -std=c11 -Wall -Wextra -g -fsanitize=address,undefined -I $(WASMPIPE_C_SDK) $(CFLAGS) \
		$(SOURCES) $(TESTS) $(WASMPIPE_C_SDK)/wasmpipe.c $(WASMPIPE_C_SDK)/testing.c -o $@ -lm

test: build/test
	./build/test

clean:
	rm -rf build $(NAME).wasm
