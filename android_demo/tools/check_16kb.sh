#!/bin/sh
# Usage: android_demo/tools/check_16kb.sh APK...
#        android_demo/tools/check_16kb.sh --expect-unaligned APK...
#
# Checks that each APK runs on devices with 16 KB memory pages, which Google Play requires of apps
# targeting Android 15 or newer:
#   1. zip alignment: every uncompressed native library starts on a 16 KB boundary
#      (zipalign -c -P 16 -v 4, from the newest Android SDK build-tools, or $ZIPALIGN);
#   2. ELF alignment: every LOAD segment of every arm64-v8a and x86_64 library is aligned to
#      16 KB or more (readelf -lW; 0x1000 = 4 KB libraries load only on 4 KB-page devices).
# Exits non-zero, naming the library, if either check fails. With --expect-unaligned it succeeds
# only if every APK exists and has a 4 KB-aligned library (the pytorchLite build: it documents
# in CI why that build cannot be published on Google Play).
set -eu

expect_unaligned=0
if [ "${1:-}" = "--expect-unaligned" ]; then
    expect_unaligned=1
    shift
fi
if [ -z "${ZIPALIGN:-}" ]; then
    sdk="${ANDROID_HOME:-${ANDROID_SDK_ROOT:-}}"
    tools=$(ls -d "$sdk"/build-tools/*/ 2>/dev/null | sort -V | tail -n 1)
    ZIPALIGN="${tools}zipalign"
fi
[ -x "$ZIPALIGN" ] || { echo "zipalign not found: set ANDROID_HOME or ZIPALIGN" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 [--expect-unaligned] APK..." >&2; exit 2; }

status=0
for apk in "$@"; do
    echo "== $apk"
    [ -f "$apk" ] || { echo "no such APK: $apk" >&2; exit 2; }
    aligned=1
    "$ZIPALIGN" -c -P 16 -v 4 "$apk" || aligned=0
    work=$(mktemp -d)
    unzip -q -o "$apk" 'lib/*' -d "$work" 2>/dev/null || true
    for so in $(find "$work/lib" -name '*.so' \( -path '*/arm64-v8a/*' -o -path '*/x86_64/*' \) 2>/dev/null | sort); do
        name=${so#"$work"/}
        smallest=$(readelf -lW "$so" | awk '$1 == "LOAD" { print $NF }' | while read -r align; do echo $((align)); done | sort -n | head -n 1)
        if [ -z "$smallest" ] || [ "$smallest" -lt 16384 ]; then
            echo "NOT 16 KB-aligned: $name (smallest LOAD alignment ${smallest:-none})" >&2
            aligned=0
        else
            echo "16 KB-aligned: $name (LOAD alignment $smallest)"
        fi
    done
    rm -rf "$work"
    if [ $expect_unaligned = 1 ]; then
        if [ $aligned = 1 ]; then echo "expected a library that is not 16 KB-aligned in $apk" >&2; status=1; fi
    elif [ $aligned = 0 ]; then
        status=1
    fi
done
exit $status
