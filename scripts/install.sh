#!/usr/bin/env bash
# Install voxide's C library, headers, pkg-config file and CMake package.
#
#   scripts/install.sh --prefix DIR [--no-build] [--target-dir DIR]
#
# Installs under DIR:
#   lib/libvoxide.so.X.Y.Z  (soname libvoxide.so.X) + lib/libvoxide.so.X, lib/libvoxide.so symlinks
#   lib/libvoxide.a
#   include/voxide.h, include/voxide.hpp
#   lib/pkgconfig/voxide.pc
#   lib/cmake/Voxide/VoxideConfig.cmake, VoxideConfigVersion.cmake  (target Voxide::voxide)
# Builds with `cargo build --release --lib` first unless --no-build is given.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix=""
build=1
target_dir="${CARGO_TARGET_DIR:-$root/target}"
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --no-build) build=0; shift ;;
        --target-dir) target_dir="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$prefix" ] || { echo "usage: scripts/install.sh --prefix DIR [--no-build]" >&2; exit 2; }
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n1)"
major="${version%%.*}"
rest="${version#*.}"
minor="${rest%%.*}"

if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release --lib --target-dir "$target_dir")
fi
rel="$target_dir/release"
for f in libvoxide.so libvoxide.a; do
    [ -f "$rel/$f" ] || { echo "install.sh: $rel/$f missing (run cargo build --release)" >&2; exit 1; }
done

libdir="$prefix/lib"
install -d "$libdir" "$prefix/include" "$libdir/pkgconfig" "$libdir/cmake/Voxide"
install -m 0755 "$rel/libvoxide.so" "$libdir/libvoxide.so.$version"
ln -sfn "libvoxide.so.$version" "$libdir/libvoxide.so.$major"
ln -sfn "libvoxide.so.$major" "$libdir/libvoxide.so"
install -m 0644 "$rel/libvoxide.a" "$libdir/libvoxide.a"
install -m 0644 "$root/include/voxide.h" "$root/include/voxide.hpp" "$prefix/include/"

# Libraries a static link needs besides libvoxide.a (Rust std on Linux/glibc).
static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
subst() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
        -e "s|@VERSION_MAJOR@|$major|g" -e "s|@VERSION_MINOR@|$minor|g" \
        -e "s|@SOVERSION@|$major|g" -e "s|@STATIC_LIBS@|$static_libs|g" \
        -e "s|@SIZEOF_VOID_P@|8|g" "$1" > "$2"
}
subst "$root/cmake/voxide.pc.in" "$libdir/pkgconfig/voxide.pc"
subst "$root/cmake/VoxideConfig.cmake.in" "$libdir/cmake/Voxide/VoxideConfig.cmake"
subst "$root/cmake/VoxideConfigVersion.cmake.in" "$libdir/cmake/Voxide/VoxideConfigVersion.cmake"
chmod 0644 "$libdir/pkgconfig/voxide.pc" "$libdir/cmake/Voxide/"*.cmake

echo "installed voxide $version under $prefix"
echo "  C/C++:  pkg-config: PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs voxide"
echo "          CMake:      -DCMAKE_PREFIX_PATH=$prefix, find_package(Voxide REQUIRED), Voxide::voxide"
echo "  run:    LD_LIBRARY_PATH=$libdir (or an rpath) unless $libdir is a system library directory"
