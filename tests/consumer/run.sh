#!/bin/sh
# Install coil from the build tree into a scratch prefix, then build and run a
# consumer program against it twice: with CMake's find_package(coil) and with
# pkg-config. Usage: run.sh SOURCE_DIR BUILD_DIR WORK_DIR [EXTRA_CFLAGS]
set -eu
src=$1 build=$2 work=$3 extra=${4:-}
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

echo "== find_package(coil)"
cmake -S "$src/tests/consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"

echo "== pkg-config coil"
pcdir=$(dirname "$(find "$prefix" -name coil.pc | head -n1)")
export PKG_CONFIG_PATH="$pcdir"
libdir=$(pkg-config --variable=libdir coil)

# Every package coil.pc requires must be one libcoil.so links: a Requires.private
# nothing uses makes every static user install (and link) it for nothing.
needed=$(readelf -d "$libdir/libcoil.so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
for m in $(pkg-config --print-requires-private coil | sed 's/[ <>=].*//'); do
    used=""
    for l in $(pkg-config --libs-only-l "$m"); do
        if printf '%s\n' "$needed" | grep -q "^lib${l#-l}\.so"; then
            used=yes
        fi
    done
    if [ -z "$used" ]; then
        echo "coil.pc: Requires.private names $m, but libcoil.so links none of" \
             "$(pkg-config --libs-only-l "$m")" >&2
        exit 1
    fi
done
echo "coil.pc: every Requires.private is linked ($(pkg-config --print-requires-private coil | paste -s -d ' ' -))"
# shellcheck disable=SC2046
${CC:-cc} $extra -o "$work/pc_shared" "$src/tests/consumer/main.c" \
    $(pkg-config --cflags --libs coil) -Wl,-rpath,"$libdir"
"$work/pc_shared"
# shellcheck disable=SC2046
${CC:-cc} $extra -o "$work/pc_static" "$src/tests/consumer/main.c" \
    $(pkg-config --cflags coil) "$libdir/libcoil.a" $(pkg-config --static --libs-only-l coil | sed 's/-lcoil//')
"$work/pc_static"
echo "consumer: ok"
