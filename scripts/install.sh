#!/usr/bin/env bash
# Install voxide's C library, headers, pkg-config file and CMake package.
#
#   scripts/install.sh --prefix DIR [--no-build] [--target-dir DIR]
#                      [--target TRIPLE] [--dry-run]
#
# Installs under DIR (Linux and other ELF systems, the default):
#   lib/libvoxide.so.X.Y.Z  (soname libvoxide.so.X) + lib/libvoxide.so.X, lib/libvoxide.so symlinks
#   lib/libvoxide.a
#   include/voxide.h, include/voxide.hpp
#   lib/pkgconfig/voxide.pc
#   lib/cmake/Voxide/VoxideConfig.cmake, VoxideConfigVersion.cmake  (target Voxide::voxide)
# Builds with `cargo build --release --lib` first unless --no-build is given.
#
# --target TRIPLE: the artefacts of `cargo build --release --target TRIPLE`
# (target/TRIPLE/release), named the way that OS names them:
#   *-windows-gnu (mingw-w64): bin/voxide.dll, bin/voxide.exe (the CLI; the
#     build then includes --bin voxide), lib/libvoxide.dll.a (the DLL's import
#     library), lib/libvoxide.a, the headers, pkg-config and CMake files
#     (Voxide::voxide: IMPORTED_LOCATION the DLL, IMPORTED_IMPLIB the import
#     library);
#   *-apple-darwin: lib/libvoxide.dylib (install name @rpath/libvoxide.dylib:
#     rustc's default for a cdylib, set again with install_name_tool where
#     that exists), lib/libvoxide.a, the headers, pkg-config and CMake files.
#   Other triples install as Linux does.
# --dry-run: print what would be installed (files and generated files) and
# the library names the CMake/pkg-config files use; build, check and write
# nothing (e.g. for macOS targets, which cannot be linked without Apple's SDK).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix=""
build=1
target=""
dry_run=0
target_dir="${CARGO_TARGET_DIR:-$root/target}"
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --no-build) build=0; shift ;;
        --target-dir) target_dir="${2:?}"; shift 2 ;;
        --target) target="${2:?--target needs a target triple}"; shift 2 ;;
        --target=*) target="${1#--target=}"; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$prefix" ] || { echo "usage: scripts/install.sh --prefix DIR [--no-build] [--target TRIPLE] [--dry-run]" >&2; exit 2; }
case "$target" in
    *-windows-gnu*) os=windows ;;
    *-windows-*) echo "install.sh: $target: only the mingw-w64 (*-windows-gnu) targets are supported" >&2; exit 2 ;;
    *-apple-darwin) os=macos ;;
    *) os=elf ;;
esac
if [ "$dry_run" = 1 ]; then
    case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
    build=0
else
    mkdir -p "$prefix"
    prefix="$(cd "$prefix" && pwd)"
fi

version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n1)"
major="${version%%.*}"
rest="${version#*.}"
minor="${rest%%.*}"

target_args=()
[ -z "$target" ] || target_args=(--target "$target")
bins=()
[ "$os" != windows ] || bins=(--bin voxide)
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release --lib "${bins[@]}" "${target_args[@]}" --target-dir "$target_dir")
fi
rel="$target_dir${target:+/$target}/release"
libdir="$prefix/lib"

# What is installed: "SOURCE DEST MODE" (DEST relative to the prefix), the
# symlinks "-> TARGET LINK", and the library the CMake file imports.
case "$os" in
    elf)
        files=("$rel/libvoxide.so lib/libvoxide.so.$version 0755"
               "$rel/libvoxide.a lib/libvoxide.a 0644")
        links=("libvoxide.so.$version lib/libvoxide.so.$major" "libvoxide.so.$major lib/libvoxide.so")
        config_in="$root/cmake/VoxideConfig.cmake.in"
        # Libraries a static link needs besides libvoxide.a (Rust std on Linux/glibc).
        static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
        ;;
    windows)
        files=("$rel/voxide.dll bin/voxide.dll 0755"
               "$rel/voxide.exe bin/voxide.exe 0755"
               "$rel/libvoxide.dll.a lib/libvoxide.dll.a 0644"
               "$rel/libvoxide.a lib/libvoxide.a 0644")
        links=()
        config_in="$root/cmake/VoxideConfig-windows.cmake.in"
        # Libraries a static link needs besides libvoxide.a (Rust std on mingw-w64).
        static_libs="-lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp"
        ;;
    macos)
        files=("$rel/libvoxide.dylib lib/libvoxide.dylib 0755"
               "$rel/libvoxide.a lib/libvoxide.a 0644")
        links=()
        config_in="$root/cmake/VoxideConfig-macos.cmake.in"
        # Libraries a static link needs besides libvoxide.a (Rust std on macOS).
        static_libs="-lSystem -lc -lm"
        ;;
esac
generated=("$root/cmake/voxide.pc.in lib/pkgconfig/voxide.pc"
           "$config_in lib/cmake/Voxide/VoxideConfig.cmake"
           "$root/cmake/VoxideConfigVersion.cmake.in lib/cmake/Voxide/VoxideConfigVersion.cmake")

if [ "$dry_run" = 1 ]; then
    echo "install.sh --dry-run: voxide $version for ${target:-the host} ($os) under $prefix"
    for f in "${files[@]}"; do
        read -r src dest mode <<<"$f"
        echo "  install -m $mode ${src#"$root"/} $dest"
    done
    for l in "${links[@]}"; do
        read -r to link <<<"$l"
        echo "  ln -s $to $link"
    done
    [ "$os" != macos ] || echo "  install_name_tool -id @rpath/libvoxide.dylib lib/libvoxide.dylib"
    echo "  install -m 0644 include/voxide.h include/voxide.hpp include/"
    for g in "${generated[@]}"; do
        read -r src dest <<<"$g"
        echo "  generate $dest from ${src#"$root"/}"
    done
    echo "  CMake Voxide::voxide: $(sed -n 's/^set(Voxide_LIBRARY "${_voxide_prefix}\/\(.*\)")$/\1/p' "$config_in" | sed "s/@VERSION@/$version/")"
    echo "  pkg-config Libs.private: $static_libs"
    exit 0
fi

for f in "${files[@]}"; do
    read -r src dest mode <<<"$f"
    [ -f "$src" ] || { echo "install.sh: $src missing (run cargo build --release${target:+ --target $target})" >&2; exit 1; }
done

install -d "$libdir" "$prefix/include" "$libdir/pkgconfig" "$libdir/cmake/Voxide"
[ "$os" != windows ] || install -d "$prefix/bin"
for f in "${files[@]}"; do
    read -r src dest mode <<<"$f"
    install -m "$mode" "$src" "$prefix/$dest"
done
for l in "${links[@]}"; do
    read -r to link <<<"$l"
    ln -sfn "$to" "$prefix/$link"
done
if [ "$os" = macos ] && command -v install_name_tool >/dev/null; then
    install_name_tool -id @rpath/libvoxide.dylib "$libdir/libvoxide.dylib"
fi
install -m 0644 "$root/include/voxide.h" "$root/include/voxide.hpp" "$prefix/include/"

subst() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
        -e "s|@VERSION_MAJOR@|$major|g" -e "s|@VERSION_MINOR@|$minor|g" \
        -e "s|@SOVERSION@|$major|g" -e "s|@STATIC_LIBS@|$static_libs|g" \
        -e "s|@SIZEOF_VOID_P@|8|g" "$1" > "$2"
}
for g in "${generated[@]}"; do
    read -r src dest <<<"$g"
    subst "$src" "$prefix/$dest"
done
chmod 0644 "$libdir/pkgconfig/voxide.pc" "$libdir/cmake/Voxide/"*.cmake

echo "installed voxide $version under $prefix"
echo "  C/C++:  pkg-config: PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs voxide"
echo "          CMake:      -DCMAKE_PREFIX_PATH=$prefix, find_package(Voxide REQUIRED), Voxide::voxide"
case "$os" in
    elf) echo "  run:    LD_LIBRARY_PATH=$libdir (or an rpath) unless $libdir is a system library directory" ;;
    windows) echo "  run:    $prefix/bin (voxide.dll) next to the program or on PATH" ;;
    macos) echo "  run:    an rpath to $libdir (-Wl,-rpath,$libdir) or DYLD_LIBRARY_PATH=$libdir" ;;
esac
